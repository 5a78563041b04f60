"""Who the client is, over HTTP: forwarded addresses only from configured proxies, and
with auth off only this machine (DNS rebinding, cross-origin writes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.security import AuditFilter
from tests.conftest import LiveServer, make_key, served

pytestmark = pytest.mark.model


async def test_x_forwarded_for_from_loopback_is_not_believed(live_server: LiveServer) -> None:
    user = "xff-spoofer"
    key = make_key(live_server.gateway, user, ["developer"], ip_allowlist=["10.1.2.3/32"])
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        resp = await http.get(
            "/v1/models",
            headers={"Authorization": f"Bearer {key}", "X-Forwarded-For": "10.1.2.3"},
        )
    assert resp.status_code == 403  # was 200: the allowlist took the header's word
    assert "127.0.0.1" in resp.json()["error"]["message"]


async def test_the_audit_records_the_real_peer_address(live_server: LiveServer) -> None:
    user = "xff-audited"
    key = make_key(live_server.gateway, user, ["developer"])
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        await http.get(
            "/v1/models",
            headers={"Authorization": f"Bearer {key}", "X-Forwarded-For": "203.0.113.9"},
        )
    records = live_server.gateway.audit_log.query(AuditFilter(user=user), limit=10)
    assert [r["source_ip"] for r in records] == ["127.0.0.1"]


@pytest.fixture
async def open_server(engine: LlamaCppEngine, tmp_path: Path) -> AsyncIterator[str]:
    """The API with authentication off, as on a developer's laptop."""
    from luodi.api.app import create_app
    from luodi.config import KnowledgeSettings, SecuritySettings, Settings, StorageSettings

    settings = Settings(
        security=SecuritySettings(auth_enabled=False),
        storage=StorageSettings(database_url=f"sqlite:///{tmp_path / 'luodi.db'}"),
        knowledge=KnowledgeSettings(data_dir=tmp_path / "kb"),
    )
    app = create_app(settings, engines={engine.info.name: engine})
    async with served(app) as url:
        yield url


async def test_with_auth_off_a_foreign_host_name_is_refused(open_server: str) -> None:
    async with httpx.AsyncClient(base_url=open_server, timeout=30) as http:
        rebound = await http.get("/admin/users", headers={"Host": "attacker.example"})
        local = await http.get("/v1/models")
    assert rebound.status_code == 403 and "DNS rebinding" in rebound.text
    assert local.status_code == 200


async def test_with_auth_off_a_cross_origin_write_is_refused(open_server: str) -> None:
    async with httpx.AsyncClient(base_url=open_server, timeout=30) as http:
        resp = await http.post(
            "/v1/knowledge/docs/documents",
            files={"file": ("a.txt", b"planted", "text/plain")},
            headers={"Origin": "https://attacker.example"},
        )
    assert resp.status_code == 403 and "cross-origin" in resp.text
