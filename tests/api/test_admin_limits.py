"""Limits larger than their columns hold are the client's error, not a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.model


@pytest.mark.parametrize(
    ("field", "value"),
    [("requests_per_minute", 2**31), ("tokens_per_minute", 2**63), ("tokens_per_day", 2**63)],
)
async def test_an_oversized_limit_is_a_400_naming_it(
    live_server: LiveServer, field: str, value: int
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, headers=live_server.headers) as http:
        resp = await http.post(
            "/admin/tenants", json={"name": f"huge-{field}", "limits": {field: value}}
        )
    assert resp.status_code == 400, resp.text  # was a 500 OverflowError (schemathesis)
    assert field in resp.json()["error"]["message"]
