"""Text that is not valid Unicode (a lone surrogate) is the client's error: 400, audited."""

from __future__ import annotations

import httpx
import pytest

from luodi.security import AuditFilter
from tests.conftest import LiveServer, make_key

pytestmark = pytest.mark.model

# JSON may spell a lone surrogate; no UTF-8 text can hold one.
CASES = [
    (
        "/v1/chat/completions",
        '{"model": "%s", "max_tokens": 2, "messages": [{"role": "user", "content": "a\\ud800b"}]}',
    ),
    ("/v1/completions", '{"model": "%s", "max_tokens": 2, "prompt": "\\udfff"}'),
    ("/v1/embeddings", '{"model": "%s", "input": ["ok", "x\\ud83d"]}'),
]


@pytest.mark.parametrize(("route", "template"), CASES)
async def test_a_lone_surrogate_is_a_400_naming_the_field(
    live_server: LiveServer, route: str, template: str
) -> None:
    key = make_key(live_server.gateway, f"surrogate{route.replace('/', '-')}", ["developer"])
    model = "all-minilm-l6-v2" if route == "/v1/embeddings" else live_server.model
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        resp = await http.post(
            route,
            content=(template % model).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert "surrogate" in error["message"]
    assert error["param"]
    records = live_server.gateway.audit_log.query(
        AuditFilter(user=f"surrogate{route.replace('/', '-')}")
    )
    assert [r["decision"] for r in records] == ["denied"]
