"""Changing keys and tenants through the admin API, and per-key usage from the audit log.

Two tenants (acme, globex), a global admin, acme's own admin and an analyst: a change
takes effect on the key's next request, every change is an audit record, and what a
role or a tenant's admin may not reach is refused (403) and left unchanged.
"""

from __future__ import annotations

import json

import httpx
import pytest

from luodi.security import AuditEvent, AuditFilter, Gateway
from luodi.security.passwords import PasswordStore, SignIn

from .conftest import bearer

# acme's admin also holds what acme's analysts hold: no one hands out or edits more.
ACME_ADMIN = [
    "users:manage:acme",
    "keys:manage:acme",
    *("model:*:invoke", "kb:*:read", "pii:use", "risk:*:score"),
]


@pytest.fixture
async def keys(sqlite_gateway: Gateway) -> dict[str, dict[str, str]]:
    """Users root (admin), aa (acme's admin), alice (acme analyst), gary (globex analyst)."""
    gw = sqlite_gateway
    for tenant in ("acme", "globex"):
        gw.directory.create_tenant(tenant)
    gw.directory.create_role("acme-admin", ACME_ADMIN)
    users = {
        "root": ("default", ["admin"]),
        "aa": ("acme", ["acme-admin"]),
        "alice": ("acme", ["analyst"]),
        "gary": ("globex", ["analyst"]),
    }
    headers = {}
    for user, (tenant, roles) in users.items():
        gw.directory.create_user(user, tenant=tenant, roles=roles)
        headers[user] = {"Authorization": bearer(gw.keys.create(user, name=user).secret)}
    return headers


def key_of(gw: Gateway, user: str) -> str:
    return next(k.id for k in gw.keys.list_keys(user=user))


async def test_changed_key_limits_apply_from_the_next_request(
    sqlite_gateway: Gateway, client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    gw = sqlite_gateway
    alice = keys["alice"]["Authorization"]
    before = await gw.authenticate(alice, "127.0.0.1")  # cached from here on
    assert before.key_limits.requests_per_minute != 7
    key_id = key_of(gw, "alice")
    body = {"limits": {"requests_per_minute": 7, "tokens_per_day": 900}, "priority": 2}
    r = await client.patch(f"/admin/keys/{key_id}", json=body, headers=keys["root"])
    assert r.status_code == 200, r.text
    assert r.json()["limits"]["requests_per_minute"] == 7 and r.json()["priority"] == 2
    assert r.json()["name"] == "alice"  # what was not sent is kept
    after = await gw.authenticate(alice, "127.0.0.1")
    assert (after.key_limits.requests_per_minute, after.key_limits.tokens_per_day) == (7, 900)
    assert after.priority == 2
    # An explicit null lifts an allowlist; a field left out stays.
    await client.patch(
        f"/admin/keys/{key_id}", json={"allowed_models": ["qwen3"]}, headers=keys["root"]
    )
    assert (await gw.authenticate(alice, "127.0.0.1")).allowed_models == ("qwen3",)
    r = await client.patch(
        f"/admin/keys/{key_id}", json={"allowed_models": None}, headers=keys["root"]
    )
    assert r.json()["allowed_models"] is None and r.json()["priority"] == 2
    assert (await gw.authenticate(alice, "127.0.0.1")).allowed_models is None
    records = gw.audit_log.query(AuditFilter(user="root"), limit=100)
    updates = [r for r in records if r["endpoint"] == "keys.update"]
    assert len(updates) == 3 and all(r["decision"] == "allowed" for r in updates)
    assert json.loads(updates[0]["detail_json"])["limits"]["requests_per_minute"] == 7


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"priority": 5}, 400, "priority"),
        ({"limits": {"requests_per_minute": 0}}, 400, "requests_per_minute"),
        ({"ip_allowlist": ["not-a-network"]}, 400, "IP allowlist"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, 400, "past"),
        ({"secret": "x"}, 400, "secret"),
    ],
)
async def test_a_bad_key_change_is_a_400_and_changes_nothing(
    sqlite_gateway: Gateway,
    client: httpx.AsyncClient,
    keys: dict[str, dict[str, str]],
    body: dict[str, object],
    status: int,
    words: str,
) -> None:
    key_id = key_of(sqlite_gateway, "alice")
    before = sqlite_gateway.keys.info(key_id)
    r = await client.patch(f"/admin/keys/{key_id}", json=body, headers=keys["root"])
    assert r.status_code == status, r.text
    assert words in r.text
    assert sqlite_gateway.keys.info(key_id) == before


async def test_a_revoked_or_unknown_key_cannot_be_changed(
    sqlite_gateway: Gateway, client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    key_id = key_of(sqlite_gateway, "gary")
    sqlite_gateway.keys.revoke(key_id)
    r = await client.patch(f"/admin/keys/{key_id}", json={"priority": 0}, headers=keys["root"])
    assert r.status_code == 400 and "revoked" in r.json()["error"]["message"]
    r = await client.patch("/admin/keys/key_nope", json={"priority": 0}, headers=keys["root"])
    assert r.status_code == 404


async def test_a_tenant_admin_changes_its_own_keys_only(
    sqlite_gateway: Gateway, client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    gw = sqlite_gateway
    change = {"limits": {"tokens_per_minute": 50}}
    mine = await client.patch(f"/admin/keys/{key_of(gw, 'alice')}", json=change, headers=keys["aa"])
    assert mine.status_code == 200, mine.text
    gary = key_of(gw, "gary")
    before = gw.keys.info(gary)
    theirs = await client.patch(f"/admin/keys/{gary}", json=change, headers=keys["aa"])
    assert theirs.status_code == 403
    assert "'globex'" in theirs.json()["error"]["message"]
    assert gw.keys.info(gary) == before
    # A key of a user holding more than acme's admin (root's) is refused too.
    root = await client.patch(f"/admin/keys/{key_of(gw, 'root')}", json=change, headers=keys["aa"])
    assert root.status_code == 403
    denied = [
        r
        for r in gw.audit_log.query(AuditFilter(user="aa"), limit=100)
        if r["endpoint"] == "keys.update" and r["decision"] == "denied"
    ]
    assert len(denied) == 2


async def test_an_analyst_may_not_change_keys_or_tenants(
    sqlite_gateway: Gateway, client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    own = key_of(sqlite_gateway, "alice")
    r = await client.patch(
        f"/admin/keys/{own}", json={"limits": {"tokens_per_day": 10**9}}, headers=keys["alice"]
    )
    assert r.status_code == 403
    r = await client.patch(
        "/admin/tenants/acme", json={"limits": {"tokens_per_day": 10**9}}, headers=keys["alice"]
    )
    assert r.status_code == 403
    assert (await client.get("/admin/keys/usage", headers=keys["alice"])).status_code == 403


async def test_tenant_limits_and_policy_change_for_its_keys(
    sqlite_gateway: Gateway, client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    gw = sqlite_gateway
    alice = keys["alice"]["Authorization"]
    await gw.authenticate(alice, "127.0.0.1")  # cached before the change
    body = {"limits": {"requests_per_minute": 30}, "pii_policy": "strict"}
    r = await client.patch("/admin/tenants/acme", json=body, headers=keys["root"])
    assert r.status_code == 200, r.text
    assert r.json() == {
        "name": "acme",
        "limits": {"requests_per_minute": 30, "tokens_per_minute": None, "tokens_per_day": None},
        "pii_policy": "strict",
    }
    after = await gw.authenticate(alice, "127.0.0.1")
    assert after.tenant_limits.requests_per_minute == 30 and after.pii_policy == "strict"
    # Limits left out are kept; an explicit null returns to the default policy.
    r = await client.patch("/admin/tenants/acme", json={"pii_policy": None}, headers=keys["root"])
    assert r.json()["pii_policy"] is None and r.json()["limits"]["requests_per_minute"] == 30
    assert (await gw.authenticate(alice, "127.0.0.1")).pii_policy is None
    # acme's own admin may not raise what bounds acme; an unknown tenant is a 404.
    r = await client.patch(
        "/admin/tenants/acme", json={"limits": {"requests_per_minute": 10**6}}, headers=keys["aa"]
    )
    assert r.status_code == 403 and "every tenant" in r.json()["error"]["message"]
    r = await client.patch("/admin/tenants/nowhere", json={}, headers=keys["root"])
    assert r.status_code == 404


async def test_key_usage_sums_each_keys_requests_within_the_admins_tenants(
    sqlite_gateway: Gateway, client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    gw = sqlite_gateway
    for user, prompt, completion, n in (("alice", 10, 5, 3), ("gary", 7, 1, 2)):
        principal = await gw.authenticate(keys[user]["Authorization"], "127.0.0.1")
        for _ in range(n):
            await gw.audit(
                AuditEvent.for_request(
                    principal,
                    endpoint="/v1/chat/completions",
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                )
            )
    every = (await client.get("/admin/keys/usage", headers=keys["root"])).json()
    by_user = {u["user"]: u for u in every}
    assert by_user["alice"]["requests"] == 3
    assert (by_user["alice"]["prompt_tokens"], by_user["alice"]["completion_tokens"]) == (30, 15)
    assert by_user["gary"]["requests"] == 2 and by_user["gary"]["tenant"] == "globex"
    assert every[0]["user"] == "alice"  # the most tokens first
    # acme's admin sees acme's keys only.
    acme = (await client.get("/admin/keys/usage?hours=1", headers=keys["aa"])).json()
    assert {u["tenant"] for u in acme} == {"acme"} and "gary" not in {u["user"] for u in acme}
    # Nothing before the period.
    later = await client.get("/admin/keys/usage?since=2999-01-01T00:00:00Z", headers=keys["root"])
    assert later.status_code == 200 and later.json() == []


async def test_a_password_is_set_within_scope_and_never_recorded(
    sqlite_gateway: Gateway, client: httpx.AsyncClient, keys: dict[str, dict[str, str]]
) -> None:
    gw = sqlite_gateway
    secret = "correct horse battery"
    r = await client.put(
        "/admin/users/alice/password", json={"password": secret}, headers=keys["aa"]
    )
    assert r.status_code == 204, r.text
    assert PasswordStore(gw.db).check("alice", secret, failures=5, lock_s=60) is SignIn.OK
    for user, status in (("gary", 403), ("root", 403), ("nobody", 404)):
        r = await client.put(
            f"/admin/users/{user}/password", json={"password": secret}, headers=keys["aa"]
        )
        assert r.status_code == status, user
    r = await client.put(
        "/admin/users/alice/password", json={"password": "short"}, headers=keys["aa"]
    )
    assert r.status_code == 400 and "at least 10" in r.json()["error"]["message"]
    r = await client.put(
        "/admin/users/alice/password", json={"password": secret}, headers=keys["alice"]
    )
    assert r.status_code == 403  # an analyst, even for itself
    records = gw.audit_log.query(AuditFilter(), limit=1000)
    assert not [r for r in records if secret in json.dumps(r) or "short" in r["detail_json"]]
    sets = [r for r in records if r["endpoint"] == "users.set_password"]
    assert [r["decision"] for r in sets] == ["allowed", *["denied"] * 5]
