"""Admin escalation through the real HTTP API: two tenants, several roles.

Each refusal here was an accepted request before: ``keys:manage`` minted a key for
an admin, ``users:manage`` granted the admin role, and no permission could be
narrowed to a tenant, so an auditor of acme read globex's records.
"""

from __future__ import annotations

import json

import httpx
import pytest

from luodi.security import AuditFilter, Gateway

ROLES = {
    # Mints keys, and holds what the analysts it serves hold.
    "keymaster": ["keys:manage", "model:*:invoke", "kb:*:read", "pii:use", "risk:*:score"],
    "useradmin": ["users:manage"],
    "acme-admin": [
        "users:manage:acme",
        "keys:manage:acme",
        "model:*:invoke",
        "kb:*:read",
        "pii:use",
        "risk:*:score",
    ],
    "acme-auditor": ["audit:read:acme"],
}
USERS = {  # name: (tenant, roles)
    "root": ("default", ["admin"]),
    "km": ("acme", ["keymaster"]),
    "ua": ("acme", ["useradmin"]),
    "aa": ("acme", ["acme-admin"]),
    "aud-acme": ("acme", ["acme-auditor"]),
    "alice": ("acme", ["analyst"]),
    "gary": ("globex", ["analyst"]),
    "gadmin": ("globex", ["admin"]),
}


@pytest.fixture
async def keys(sqlite_gateway: Gateway) -> dict[str, dict[str, str]]:
    """Tenants acme and globex, the roles and users above; an auth header per user."""
    gw = sqlite_gateway
    for tenant in ("acme", "globex"):
        gw.directory.create_tenant(tenant)
    for role, permissions in ROLES.items():
        gw.directory.create_role(role, permissions)
    headers = {}
    for user, (tenant, roles) in USERS.items():
        gw.directory.create_user(user, tenant=tenant, roles=roles)
        headers[user] = {"Authorization": f"Bearer {gw.keys.create(user).secret}"}
    return headers


def error(r: httpx.Response) -> str:
    return str(r.json()["error"]["message"])


async def test_keys_manage_cannot_mint_a_key_for_an_admin(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]], sqlite_gateway: Gateway
) -> None:
    r = await client.post("/admin/keys", json={"user": "root"}, headers=keys["km"])
    assert r.status_code == 403, r.text
    assert "create a key for user 'root'" in error(r) and "*" in error(r)
    assert len(sqlite_gateway.keys.list_keys(user="root")) == 1  # only the fixture's
    r = await client.post("/admin/keys", json={"user": "alice"}, headers=keys["km"])
    assert r.status_code == 201, r.text
    minted = {"Authorization": f"Bearer {r.json()['key']}"}
    assert (await client.get("/admin/users", headers=minted)).status_code == 403
    denied = sqlite_gateway.audit_log.query(AuditFilter(user="km"))
    assert [(d["endpoint"], d["decision"]) for d in denied][:2] == [
        ("keys.create", "denied"),
        ("keys.create", "allowed"),
    ]


async def test_keys_manage_cannot_revoke_an_admins_key(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]], sqlite_gateway: Gateway
) -> None:
    (root_key,) = sqlite_gateway.keys.list_keys(user="root")
    r = await client.delete(f"/admin/keys/{root_key.id}", headers=keys["km"])
    assert r.status_code == 403
    assert (await client.get("/admin/users", headers=keys["root"])).status_code == 200


@pytest.mark.parametrize("role", ["admin", "auditor", "keymaster"])
async def test_users_manage_cannot_grant_a_role_with_rights_it_lacks(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]], role: str
) -> None:
    r = await client.put(f"/admin/users/ua/roles/{role}", headers=keys["ua"])
    assert r.status_code == 403, r.text
    assert "needs rights it does not hold" in error(r)
    r = await client.post(
        "/admin/users", json={"name": "sock", "tenant": "acme", "roles": [role]}, headers=keys["ua"]
    )
    assert r.status_code == 403


async def test_users_manage_cannot_widen_a_role_it_holds(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    r = await client.put("/admin/roles/useradmin", json={"permissions": ["*"]}, headers=keys["ua"])
    assert r.status_code == 403
    r = await client.post(
        "/admin/roles", json={"name": "x", "permissions": ["*"]}, headers=keys["ua"]
    )
    assert r.status_code == 403
    # ... and cannot demote someone who holds more.
    r = await client.delete("/admin/users/gadmin/roles/admin", headers=keys["ua"])
    assert r.status_code == 403
    r = await client.put("/admin/users/alice/roles/useradmin", headers=keys["ua"])
    assert r.status_code == 200, r.text


async def test_tenant_admin_reaches_its_own_tenant_only(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    aa = keys["aa"]
    r = await client.post(
        "/admin/users", json={"name": "amy", "tenant": "acme", "roles": ["analyst"]}, headers=aa
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        "/admin/users", json={"name": "gus", "tenant": "globex", "roles": []}, headers=aa
    )
    assert r.status_code == 403 and "'globex'" in error(r)
    users = (await client.get("/admin/users", headers=aa)).json()
    assert {u["tenant"] for u in users} == {"acme"}
    assert (await client.get("/admin/users?tenant=globex", headers=aa)).status_code == 403
    assert (await client.put("/admin/users/gary/roles/analyst", headers=aa)).status_code == 403
    assert (await client.post("/admin/keys", json={"user": "gary"}, headers=aa)).status_code == 403
    assert (await client.post("/admin/keys", json={"user": "alice"}, headers=aa)).status_code == 201
    listed = (await client.get("/admin/keys", headers=aa)).json()
    assert listed and {k["tenant"] for k in listed} == {"acme"}
    tenants = (await client.get("/admin/tenants", headers=aa)).json()
    assert [t["name"] for t in tenants] == ["acme"]
    assert (await client.post("/admin/tenants", json={"name": "x"}, headers=aa)).status_code == 403
    r = await client.post("/admin/roles", json={"name": "y", "permissions": []}, headers=aa)
    assert r.status_code == 403


async def test_auditor_of_acme_cannot_read_globex_records(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    # Audited admin calls by each tenant's users: records tagged acme and globex.
    await client.get("/admin/users", headers=keys["alice"])
    await client.get("/admin/users", headers=keys["gary"])
    await client.get("/admin/users", headers=keys["gadmin"])
    auditor = keys["aud-acme"]
    records = (await client.get("/admin/audit?limit=1000", headers=auditor)).json()
    assert records and {r["tenant"] for r in records} == {"acme"}
    r = await client.get("/admin/audit?tenant=globex", headers=auditor)
    assert r.status_code == 403
    exported = (await client.get("/admin/audit/export", headers=auditor)).text
    assert {json.loads(line)["tenant"] for line in exported.splitlines()} == {"acme"}
    assert (await client.get("/admin/audit/verify", headers=auditor)).status_code == 403
    everything = (await client.get("/admin/audit?limit=1000", headers=keys["root"])).json()
    assert {"acme", "globex"} <= {r["tenant"] for r in everything}


async def test_scoped_permissions_are_valid_in_roles(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    body = {"name": "globex-auditor", "permissions": ["audit:read:globex", "users:manage:globex"]}
    r = await client.post("/admin/roles", json=body, headers=keys["root"])
    assert r.status_code == 201, r.text
    body = {"name": "bad", "permissions": ["model:x:invoke:acme"]}
    assert (await client.post("/admin/roles", json=body, headers=keys["root"])).status_code == 400


async def test_audit_checkpoint_over_http(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    r = await client.get("/admin/audit/checkpoint", headers=keys["root"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["seq"] >= 0 and body["verify"]["ok"] is True
    assert (
        await client.get("/admin/audit/checkpoint", headers=keys["aud-acme"])
    ).status_code == 403


async def test_verify_against_checkpoints_over_http(
    client: httpx.AsyncClient, keys: dict[str, dict[str, str]], sqlite_gateway: Gateway
) -> None:
    root = keys["root"]
    checkpoint = (await client.get("/admin/audit/checkpoint", headers=root)).json()
    r = await client.post("/admin/audit/verify", json=[checkpoint], headers=root)
    assert r.status_code == 200 and r.json()["ok"] and r.json()["checkpoints_checked"] == 1
    with sqlite_gateway.db.engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM audit_records WHERE seq >= {checkpoint['seq']}")
    r = await client.post("/admin/audit/verify", json=[checkpoint], headers=root)
    assert r.status_code == 200 and r.json()["ok"] is False
    r = await client.post("/admin/audit/verify", json=[{"seq": 1}], headers=root)
    assert r.status_code == 400
