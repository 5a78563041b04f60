"""LocalGuard: with authentication off, DNS rebinding and cross-origin writes are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from luodi.api.app import create_app
from luodi.config import SecuritySettings, Settings, StorageSettings
from luodi.security import Gateway
from luodi.security.local_guard import LocalGuard, is_loopback_host

AUTH_OFF = SecuritySettings(auth_enabled=False)


def scope(method: str = "GET", kind: str = "http", **headers: str) -> dict[str, Any]:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return {"type": kind, "method": method, "headers": raw}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("[::1]", True),
        ("::1", True),
        ("attacker.example", False),
        ("localhost.attacker.example", False),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
    ],
)
def test_loopback_host_names(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("request_scope", "refused"),
    [
        (scope(host="127.0.0.1:8000"), False),
        (scope(host="[::1]:8000"), False),
        (scope(host="localhost"), False),
        (scope(), False),  # no Host at all: not a browser
        (scope(host="attacker.example:8000"), True),
        (scope(host="attacker.example"), True),
        (scope("POST", host="localhost:8000"), False),  # curl, SDKs: no Origin
        (scope("POST", host="localhost:8000", origin="http://localhost:3000"), False),
        (scope("POST", host="localhost:8000", origin="http://127.0.0.1:8000"), False),
        (scope("POST", host="localhost:8000", origin="http://attacker.example"), True),
        (scope("POST", host="localhost:8000", origin="null"), True),
        (scope("DELETE", host="localhost:8000", sec_fetch_site="cross-site"), True),
        (scope("GET", host="localhost:8000", origin="http://attacker.example"), False),
        (scope("GET", "websocket", host="localhost", origin="http://attacker.example"), True),
    ],
)
def test_refusals(request_scope: dict[str, Any], refused: bool) -> None:
    assert (LocalGuard.refusal(request_scope) is not None) is refused


@pytest.fixture
async def apps(tmp_path: Path) -> AsyncIterator[tuple[Any, Any]]:
    """The real app with authentication off: bare, and guarded as create_app will."""
    storage = StorageSettings(database_url=f"sqlite:///{tmp_path / 'luodi.db'}")
    gateway = await Gateway.create(AUTH_OFF, storage)
    app = create_app(
        Settings(storage=storage, security=AUTH_OFF), engines={}, embedders={}, gateway=gateway
    )
    try:
        async with app.router.lifespan_context(app):
            yield app, LocalGuard.for_settings(app, AUTH_OFF)
    finally:
        await gateway.close()


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


async def test_dns_rebinding_to_admin_is_refused(apps: tuple[Any, Any]) -> None:
    _bare, guarded = apps
    async with client(guarded) as c:
        r = await c.get("/admin/users", headers={"Host": "attacker.example"})
        assert r.status_code == 403
        assert "DNS rebinding" in r.json()["error"]["message"]
        assert (await c.get("/admin/users", headers={"Host": "localhost:8000"})).status_code == 200


async def test_create_app_guards_itself_when_auth_is_off(apps: tuple[Any, Any]) -> None:
    bare, _guarded = apps  # the app as create_app builds it, no extra wrapping
    async with client(bare) as c:
        assert (
            await c.get("/admin/users", headers={"Host": "attacker.example"})
        ).status_code == 403


async def test_cross_origin_multipart_post_is_refused(apps: tuple[Any, Any]) -> None:
    _bare, guarded = apps
    files = {"file": ("a.txt", b"hello", "text/plain")}
    async with client(guarded) as c:
        r = await c.post(
            "/admin/tenants", files=files, headers={"Origin": "https://attacker.example"}
        )
        assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
        r = await c.post(
            "/admin/tenants", json={"name": "ops"}, headers={"Origin": "http://localhost:8000"}
        )
        assert r.status_code == 201, r.text


async def test_guard_is_off_when_authentication_is_on() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    guard = LocalGuard.for_settings(app, SecuritySettings())
    async with client(guard) as c:
        r = await c.post("/x", headers={"Host": "api.example", "Origin": "https://other.example"})
    assert r.status_code == 204 and seen == ["/x"]
