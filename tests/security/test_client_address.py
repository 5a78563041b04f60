"""The client address: X-Forwarded-For believed only from configured proxies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from luodi.api.app import create_app
from luodi.config import SecuritySettings, Settings, StorageSettings
from luodi.security import AuditFilter, Gateway
from luodi.security.client_address import UVICORN_PROXY_OPTIONS, TrustedProxies, client_address
from tests.conftest import served

ALLOWED = "203.0.113.0/24"


def scope(peer: str, *forwarded: str) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", f.encode()) for f in forwarded]
    return {"type": "http", "client": (peer, 50000), "headers": headers}


@pytest.mark.parametrize(
    ("trusted", "request_scope", "expected"),
    [
        ([], scope("127.0.0.1", "203.0.113.5"), "127.0.0.1"),  # none trusted by default
        (["10.0.0.0/8"], scope("192.0.2.7", "203.0.113.5"), "192.0.2.7"),  # peer not a proxy
        (["10.0.0.0/8"], scope("10.0.0.2", "203.0.113.5"), "203.0.113.5"),
        # The client wrote its own header; the proxy appended the real peer after it.
        (["10.0.0.0/8"], scope("10.0.0.2", "203.0.113.5, 198.51.100.9"), "198.51.100.9"),
        (["10.0.0.0/8"], scope("10.0.0.2", "198.51.100.9, 10.0.0.7"), "198.51.100.9"),
        (["10.0.0.0/8"], scope("10.0.0.2", "198.51.100.9", "10.0.0.7"), "198.51.100.9"),
        (["10.0.0.0/8"], scope("10.0.0.2", "10.0.0.9"), "10.0.0.9"),  # all proxies
        (["10.0.0.0/8"], scope("10.0.0.2"), "10.0.0.2"),
        (["10.0.0.0/8"], scope("10.0.0.2", "not-an-ip"), "not-an-ip"),
        (["::1/128"], scope("::1", "2001:db8::5"), "2001:db8::5"),
    ],
)
def test_client_address(trusted: list[str], request_scope: dict[str, Any], expected: str) -> None:
    assert client_address(request_scope, TrustedProxies(trusted)) == expected


def test_trusted_proxies_must_be_networks() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        SecuritySettings(trusted_proxies=["proxy.internal"])


async def make_app(tmp_path: Path, security: SecuritySettings) -> tuple[Any, Gateway, str]:
    storage = StorageSettings(database_url=f"sqlite:///{tmp_path / 'luodi.db'}")
    gateway = await Gateway.create(security, storage)
    gateway.directory.create_user("li", roles=["admin"])
    secret = gateway.keys.create("li", ip_allowlist=[ALLOWED]).secret
    app = create_app(Settings(storage=storage), engines={}, embedders={}, gateway=gateway)
    return app, gateway, secret


@pytest.mark.parametrize(
    ("trusted", "status"),
    [([], 403), (["127.0.0.1/32"], 200)],
)
async def test_forwarded_header_passes_an_allowlist_only_from_a_trusted_proxy(
    tmp_path: Path, trusted: list[str], status: int
) -> None:
    app, gateway, secret = await make_app(tmp_path, SecuritySettings(trusted_proxies=trusted))
    headers = {"Authorization": f"Bearer {secret}", "X-Forwarded-For": "203.0.113.5"}
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
            ) as c,
        ):
            r = await c.get("/admin/roles", headers=headers)
        assert r.status_code == status, r.text
        if status == 200:
            (record,) = gateway.audit_log.query(AuditFilter(user="li"))
            assert record["source_ip"] == "203.0.113.5"
    finally:
        await gateway.close()


@pytest.mark.parametrize(("options", "status"), [({}, 200), (UVICORN_PROXY_OPTIONS, 403)])
async def test_uvicorn_must_leave_forwarded_headers_to_luodi(
    tmp_path: Path, options: dict[str, Any], status: int
) -> None:
    """uvicorn's default believes X-Forwarded-For from 127.0.0.1: the allowlist bypass."""
    app, gateway, secret = await make_app(tmp_path, SecuritySettings())
    headers = {"Authorization": f"Bearer {secret}", "X-Forwarded-For": "203.0.113.5"}
    try:
        async with served(app, options) as url, httpx.AsyncClient(base_url=url) as c:
            r = await c.get("/admin/roles", headers=headers)
        assert r.status_code == status, r.text
    finally:
        await gateway.close()
