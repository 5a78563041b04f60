"""The gateway chain over HTTP: keys, roles, quotas and one audit record per request."""

from __future__ import annotations

import httpx
import pytest

from luodi.security import AuditFilter, Limits
from tests.conftest import LiveServer, make_key

pytestmark = pytest.mark.model


async def post(server: LiveServer, key: str | None, **body: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    payload = {"model": server.model, "prompt": "Hello", "max_tokens": 2, **body}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as http:
        return await http.post("/v1/completions", json=payload)


async def test_request_without_key_is_refused_401(live_server: LiveServer) -> None:
    resp = await post(live_server, None)
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "authentication_error"
    assert resp.headers["www-authenticate"] == "Bearer"


async def test_auditor_cannot_invoke_a_model(live_server: LiveServer) -> None:
    key = make_key(live_server.gateway, "auditor-1", ["auditor"])
    resp = await post(live_server, key)
    assert resp.status_code == 403
    assert f"model:{live_server.model}:invoke" in resp.json()["error"]["message"]


async def test_key_limited_to_other_models_gets_403(live_server: LiveServer) -> None:
    key = make_key(live_server.gateway, "dev-narrow", ["developer"], allowed_models=["qwen3-14b"])
    assert (await post(live_server, key)).status_code == 403


async def test_revoked_key_is_refused_on_next_request(live_server: LiveServer) -> None:
    gateway = live_server.gateway
    gateway.directory.create_user("dev-revoked", tenant="default", roles=["developer"])
    created = gateway.keys.create("dev-revoked")
    assert (await post(live_server, created.secret)).status_code == 200
    gateway.keys.revoke(created.info.id)
    assert (await post(live_server, created.secret)).status_code == 401


async def test_rate_limit_answers_429_naming_the_limit(live_server: LiveServer) -> None:
    key = make_key(
        live_server.gateway, "dev-limited", ["developer"], limits=Limits(requests_per_minute=2)
    )
    codes = [(await post(live_server, key)).status_code for _ in range(2)]
    third = await post(live_server, key)
    assert codes == [200, 200]
    assert third.status_code == 429
    assert "Retry-After" in third.headers
    assert "requests" in third.json()["error"]["message"]


async def test_each_request_leaves_one_audit_record_with_usage(live_server: LiveServer) -> None:
    gateway = live_server.gateway
    key = make_key(gateway, "dev-audited", ["developer"])
    ok = await post(live_server, key, max_tokens=3)
    denied = await post(live_server, key, model="no-such-model")
    assert ok.status_code == 200 and denied.status_code == 404
    records = gateway.audit_log.query(AuditFilter(user="dev-audited"))
    assert len(records) == 2
    allowed = next(r for r in records if r["decision"] == "allowed")
    assert allowed["model"] == live_server.model and allowed["backend"] == "llamacpp"
    assert allowed["completion_tokens"] == 3 and allowed["prompt_tokens"] > 0
    assert allowed["prompt_sha256"] and allowed.get("prompt_text") in (None, "")
    refused = next(r for r in records if r["decision"] == "denied")
    assert "no-such-model" in refused["reason"]
    assert gateway.audit_log.verify().ok


async def test_streamed_request_is_audited_when_the_stream_ends(live_server: LiveServer) -> None:
    gateway = live_server.gateway
    key = make_key(gateway, "dev-stream", ["developer"])
    resp = await post(live_server, key, max_tokens=4, stream=True)
    assert resp.status_code == 200 and resp.text.rstrip().endswith("data: [DONE]")
    records = gateway.audit_log.query(AuditFilter(user="dev-stream"))
    assert len(records) == 1 and records[0]["completion_tokens"] == 4


async def test_admin_api_creates_a_key_that_works(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, headers=live_server.headers) as http:
        user = await http.post(
            "/admin/users", json={"name": "via-api", "tenant": "default", "roles": ["developer"]}
        )
        assert user.status_code in (200, 201), user.text
        created = await http.post("/admin/keys", json={"user": "via-api"})
        assert created.status_code == 201, created.text
    secret = created.json()["key"]
    assert secret.startswith("sk-luodi-")
    assert (await post(live_server, secret)).status_code == 200
