"""The admin REST API: guarded by the same authenticate/authorize, every action audited."""

from __future__ import annotations

import httpx
import pytest

from luodi.security import Gateway

from .conftest import make_user


def auth(gw: Gateway, user: str, role: str) -> dict[str, str]:
    make_user(gw, user, [role])
    return {"Authorization": f"Bearer {gw.keys.create(user).secret}"}


async def test_admin_creates_user_and_key_and_the_key_works(
    sqlite_gateway: Gateway, client: httpx.AsyncClient
) -> None:
    admin = auth(sqlite_gateway, "root", "admin")
    r = await client.post("/admin/users", json={"name": "li", "roles": ["analyst"]}, headers=admin)
    assert r.status_code == 201, r.text
    r = await client.post(
        "/admin/keys", json={"user": "li", "allowed_models": ["qwen3"]}, headers=admin
    )
    assert r.status_code == 201
    secret = r.json()["key"]
    principal = await sqlite_gateway.authenticate(f"Bearer {secret}", "127.0.0.1")
    assert principal.user == "li" and principal.allowed_models == ("qwen3",)
    listed = (await client.get("/admin/keys?user=li", headers=admin)).json()
    assert [k["id"] for k in listed] == [r.json()["id"]]
    assert secret not in str(listed)


async def test_key_revoked_through_api_gets_401_next_request(
    sqlite_gateway: Gateway, client: httpx.AsyncClient
) -> None:
    admin = auth(sqlite_gateway, "root", "admin")
    make_user(sqlite_gateway, "wu", ["analyst"])
    created = sqlite_gateway.keys.create("wu")
    r = await client.delete(f"/admin/keys/{created.info.id}", headers=admin)
    assert r.status_code == 200 and r.json()["revoked_us"]
    r = await client.get("/admin/roles", headers={"Authorization": f"Bearer {created.secret}"})
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("role", "method", "path", "status"),
    [
        ("developer", "GET", "/admin/keys", 403),
        ("developer", "GET", "/admin/audit", 403),
        ("analyst", "POST", "/admin/roles", 403),
        ("auditor", "GET", "/admin/audit", 200),
        ("auditor", "GET", "/admin/audit/verify", 200),
        ("auditor", "GET", "/admin/users", 403),
        ("auditor", "POST", "/admin/keys", 403),
    ],
)
async def test_admin_routes_enforce_permissions(
    sqlite_gateway: Gateway,
    client: httpx.AsyncClient,
    role: str,
    method: str,
    path: str,
    status: int,
) -> None:
    body = {"name": "r", "permissions": ["kb:x:read"], "user": "someone"}
    r = await client.request(
        method,
        path,
        headers=auth(sqlite_gateway, "u", role),
        json=body if method == "POST" else None,
    )
    assert r.status_code == status, r.text


async def test_unauthenticated_admin_call_gets_401(client: httpx.AsyncClient) -> None:
    r = await client.get("/admin/users")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


async def test_auditor_queries_and_exports_the_log(
    sqlite_gateway: Gateway, client: httpx.AsyncClient
) -> None:
    admin = auth(sqlite_gateway, "root", "admin")
    auditor = auth(sqlite_gateway, "aud", "auditor")
    await client.post("/admin/tenants", json={"name": "hr"}, headers=admin)
    records = (await client.get("/admin/audit?user=root", headers=auditor)).json()
    assert [r["endpoint"] for r in records] == ["tenants.create"]
    r = await client.get("/admin/audit/export?format=csv&user=root", headers=auditor)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "tenants.create" in r.text
    report = (await client.get("/admin/audit/verify", headers=auditor)).json()
    assert report["ok"] is True
