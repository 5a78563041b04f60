"""An over-long prompt is the client's error: a 400 naming both numbers, before the PII
stage spends its time budget scanning it (which answered 503)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.model

# Dense with personal data, so detecting it all takes far past the 500 ms budget.
LONG = "客户张伟的手机号是13812345678，身份证号11010519491231002X。" * 12_000


@pytest.mark.parametrize(
    ("route", "body", "param"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": LONG}]}, "messages"),
        ("/v1/completions", {"prompt": LONG}, "prompt"),
    ],
    ids=["chat", "completions"],
)
async def test_over_long_prompt_is_a_400_naming_both_numbers_not_a_pii_503(
    live_server: LiveServer, route: str, body: dict[str, object], param: str
) -> None:
    async with httpx.AsyncClient(
        base_url=live_server.url, headers=live_server.headers, timeout=120
    ) as http:
        resp = await http.post(route, json={"model": live_server.model, **body})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["param"] == param
    limit, used = map(int, re.findall(r"(\d+) tokens", error["message"]))
    assert limit == 8192 and used > limit
