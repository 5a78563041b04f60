"""Console forms over HTTP (no browser): key quotas, users, roles, tenants, and refusals.

The attacks: a tenant's admin reaching another tenant's keys or the global roles and
tenants, an analyst posting to admin forms, a form or an admin API call without the
session's CSRF token. Each is refused and changes nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest

from luodi.api.app import create_app
from luodi.config import KnowledgeSettings, Settings
from luodi.security import Gateway
from tests.conftest import make_key, served


async def sign_in(client: httpx.AsyncClient, key: str) -> str:
    """Sign ``client`` in to the console with ``key``; returns the session's CSRF token."""
    page = await client.get("/console/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert token is not None
    signed = await client.post(
        "/console/login", data={"login_csrf": token.group(1), "api_key": key}
    )
    assert signed.status_code == 303
    home = await client.get("/console/playground")
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', home.text)
    assert csrf is not None
    return csrf.group(1)


@pytest.fixture
async def server(
    live_gateway: Gateway, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A model-less server with the console, on loopback."""
    settings = Settings(knowledge=KnowledgeSettings(data_dir=tmp_path_factory.mktemp("kb")))
    app = create_app(settings, engines={}, embedders={}, gateway=live_gateway)
    async with served(app) as url:
        yield url


@pytest.fixture
async def admin(server: str, live_gateway: Gateway) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client signed in to a model-less server as an admin, and its CSRF token."""
    key = make_key(live_gateway, f"forms-admin-{uuid.uuid4().hex[:8]}", ["admin"])
    async with httpx.AsyncClient(base_url=server) as client:
        yield client, await sign_in(client, key)


async def test_a_key_is_created_with_quotas_and_a_model_allowlist(
    admin: tuple[httpx.AsyncClient, str], live_gateway: Gateway
) -> None:
    client, csrf = admin
    make_key(live_gateway, "forms-quota", ["developer"])
    form = {"csrf": csrf, "user": "forms-quota", "name": "limited", "rpm": "7", "tpd": "5000",
            "allowed_models": "gemma-*, qwen3"}  # fmt: skip
    created = await client.post("/console/keys", data=form)
    assert created.status_code == 201 and 'id="new-key"' in created.text
    info = next(k for k in live_gateway.keys.list_keys(user="forms-quota") if k.name == "limited")
    assert (info.limits.requests_per_minute, info.limits.tokens_per_day) == (7, 5000)
    assert info.allowed_models == ["gemma-*", "qwen3"]
    bad = await client.post("/console/keys", data={**form, "rpm": "-3"})
    assert bad.status_code == 400 and "rpm must be a positive whole number" in bad.text
    assert bad.headers["content-security-policy"].startswith("default-src 'none'")


async def test_disabling_a_user_refuses_their_keys(
    admin: tuple[httpx.AsyncClient, str], live_gateway: Gateway
) -> None:
    client, csrf = admin
    name = "forms/<b>odd</b>"  # a slash and markup: the route and the page both cope
    key = make_key(live_gateway, name, ["developer"])
    auth = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/v1/models", headers=auth)).status_code == 200
    users = await client.get("/console/users")
    assert "forms/&lt;b&gt;odd&lt;/b&gt;" in users.text and "<b>odd</b>" not in users.text
    path = f"/console/users/{quote(name, safe='/')}/disable"  # as the page's form has it
    assert f'action="{path}"' in users.text
    done = await client.post(path, data={"csrf": csrf})
    assert done.status_code == 303
    refused = await client.get("/v1/models", headers=auth)
    assert refused.status_code == 401 and "disabled" in refused.json()["error"]["message"]
    enabled = await client.post(path.replace("/disable", "/enable"), data={"csrf": csrf})
    assert enabled.status_code == 303
    assert (await client.get("/v1/models", headers=auth)).status_code == 200


@dataclass
class Tenants:
    """Two fresh tenants: north's admin and analyst, south's analyst; secrets and key ids."""

    north: str
    south: str
    secrets: dict[str, str]
    key_ids: dict[str, str]


@pytest.fixture
def tenants(live_gateway: Gateway) -> Tenants:
    tag = uuid.uuid4().hex[:8]
    north, south = f"north-{tag}", f"south-{tag}"
    directory = live_gateway.directory
    for tenant in (north, south):
        directory.create_tenant(tenant)
    analyst = ["model:*:invoke", "kb:*:read", "pii:use", "risk:*:score"]
    directory.create_role(
        f"{north}-admin", [f"users:manage:{north}", f"keys:manage:{north}", *analyst]
    )
    users = {
        "nadmin": (north, f"{north}-admin"),
        "nana": (north, "analyst"),
        "sana": (south, "analyst"),
    }
    secrets, key_ids = {}, {}
    for user, (tenant, role) in users.items():
        directory.create_user(f"{user}-{tag}", tenant=tenant, roles=[role])
        created = live_gateway.keys.create(f"{user}-{tag}", name=user)
        secrets[user], key_ids[user] = created.secret, created.info.id
    return Tenants(north, south, secrets, key_ids)


async def test_a_tenant_admin_sees_and_edits_only_its_own_tenants_keys(
    server: str, tenants: Tenants, live_gateway: Gateway
) -> None:
    keys = live_gateway.keys
    south_key, north_key = tenants.key_ids["sana"], tenants.key_ids["nana"]
    async with httpx.AsyncClient(base_url=server) as client:
        csrf = await sign_in(client, tenants.secrets["nadmin"])
        listed = await client.get("/console/keys")
        assert listed.status_code == 200
        assert north_key in listed.text and south_key not in listed.text
        before = keys.info(south_key)
        for action in ("update", "revoke"):
            refused = await client.post(
                f"/console/keys/{south_key}/{action}", data={"csrf": csrf, "rpm": "1"}
            )
            assert refused.status_code == 403, action
            assert f"tenant {tenants.south!r}" in refused.text.replace("&#39;", "'")
        assert keys.info(south_key) == before
        done = await client.post(
            f"/console/keys/{north_key}/update", data={"csrf": csrf, "rpm": "5", "priority": "0"}
        )
        assert done.status_code == 303
        assert keys.info(north_key).limits.requests_per_minute == 5
        # The dashboard's usage call (the admin API, with the session) is narrowed too.
        usage = await client.get("/admin/keys/usage")
        assert usage.status_code == 200
        assert {u["tenant"] for u in usage.json()} <= {tenants.north}


async def test_a_tenant_admin_may_not_change_global_objects_or_escalate(
    server: str, tenants: Tenants, live_gateway: Gateway
) -> None:
    directory = live_gateway.directory
    nana = next(u.name for u in directory.list_users(tenant=tenants.north) if "nana" in u.name)
    sana = next(u.name for u in directory.list_users(tenant=tenants.south))
    async with httpx.AsyncClient(base_url=server) as client:
        csrf = await sign_in(client, tenants.secrets["nadmin"])
        roles = await client.get("/console/roles")
        assert roles.status_code == 200  # reading roles is fine; no form to change them
        assert 'id="create-role"' not in roles.text and "edit-tenant" not in roles.text
        attempts = {
            f"/console/tenants/{tenants.north}/update": {"rpm": "1000000"},
            "/console/tenants": {"name": f"{tenants.north}-x"},
            "/console/roles": {"name": f"{tenants.north}-root", "permissions": "*"},
            f"/console/roles/{tenants.north}-admin/update": {"permissions": "*"},
            f"/console/users/{sana}/grant": {"role": "analyst"},  # another tenant's user
            f"/console/users/{nana}/grant": {"role": "admin"},  # more than it holds
        }
        for path, form in attempts.items():
            refused = await client.post(path, data={"csrf": csrf, **form})
            assert refused.status_code == 403, path
    assert {t.name for t in directory.list_tenants()} >= {tenants.north}
    assert f"{tenants.north}-x" not in {t.name for t in directory.list_tenants()}
    assert next(u for u in directory.list_users() if u.name == nana).roles == ["analyst"]
    assert f"{tenants.north}-root" not in {r.name for r in directory.list_roles()}


async def test_an_analyst_sees_no_edit_pages_and_cannot_post_to_them(
    server: str, tenants: Tenants, live_gateway: Gateway
) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        csrf = await sign_in(client, tenants.secrets["nana"])
        for page in ("/console/keys", "/console/roles", "/console/users"):
            assert (await client.get(page)).status_code == 403, page
        own = tenants.key_ids["nana"]
        before = live_gateway.keys.info(own)
        for path in (
            f"/console/keys/{own}/update",
            f"/console/tenants/{tenants.north}/update",
            "/console/roles",
            f"/console/roles/{tenants.north}-admin/delete",
        ):
            refused = await client.post(path, data={"csrf": csrf, "rpm": "99999", "name": "x",
                                                    "permissions": "*"})  # fmt: skip
            assert refused.status_code == 403, path
        assert live_gateway.keys.info(own) == before
        assert (await client.get("/admin/keys/usage")).status_code == 403


async def test_edits_without_the_csrf_token_are_refused(
    admin: tuple[httpx.AsyncClient, str], tenants: Tenants, live_gateway: Gateway
) -> None:
    client, csrf = admin
    key_id = tenants.key_ids["nana"]
    before = live_gateway.keys.info(key_id)
    for path, form in {
        f"/console/keys/{key_id}/update": {"rpm": "3"},
        f"/console/tenants/{tenants.north}/update": {"rpm": "3"},
        "/console/roles": {"name": "no-csrf", "permissions": "kb:x:read"},
        f"/console/users/{'nana-' + tenants.north.split('-')[1]}/grant": {"role": "auditor"},
    }.items():
        refused = await client.post(path, data=form)
        assert refused.status_code == 403, path
        assert "CSRF" in refused.json()["error"]["message"]
    assert live_gateway.keys.info(key_id) == before
    assert "no-csrf" not in {r.name for r in live_gateway.directory.list_roles()}
    # The admin API with the session cookie: the token must come as a header.
    patch = {"limits": {"requests_per_minute": 3}}
    assert (await client.patch(f"/admin/keys/{key_id}", json=patch)).status_code == 403
    done = await client.patch(f"/admin/keys/{key_id}", json=patch, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200, done.text
    assert live_gateway.keys.info(key_id).limits.requests_per_minute == 3


@pytest.mark.parametrize(
    ("path", "form", "words"),
    [
        ("/console/roles", {"name": "bad-perm", "permissions": "kb:read"}, "invalid permission"),
        ("/console/tenants", {"name": "bad:name"}, "may not contain"),
        ("/console/tenants/default/update", {"rpm": "-1"}, "rpm must be a positive"),
    ],
)
async def test_bad_edits_are_answered_400_as_a_page(
    admin: tuple[httpx.AsyncClient, str], path: str, form: dict[str, str], words: str
) -> None:
    client, csrf = admin
    answered = await client.post(path, data={"csrf": csrf, **form})
    assert answered.status_code == 400 and words in answered.text
    assert answered.headers["content-type"].startswith("text/html")


async def test_an_admin_sets_a_password_and_the_user_signs_in_with_it(
    server: str, tenants: Tenants, live_gateway: Gateway
) -> None:
    directory = live_gateway.directory
    nana = next(u.name for u in directory.list_users(tenant=tenants.north) if "nana" in u.name)
    sana = next(u.name for u in directory.list_users(tenant=tenants.south))
    async with httpx.AsyncClient(base_url=server) as client:
        csrf = await sign_in(client, tenants.secrets["nadmin"])
        users = await client.get("/console/users")
        assert f'action="/console/users/{nana}/password"' in users.text
        set_ = await client.post(
            f"/console/users/{nana}/password", data={"csrf": csrf, "password": "north star 123"}
        )
        assert set_.status_code == 303
        refused = await client.post(
            f"/console/users/{sana}/password", data={"csrf": csrf, "password": "south star 123"}
        )
        assert refused.status_code == 403  # another tenant's user
        short = await client.post(
            f"/console/users/{nana}/password", data={"csrf": csrf, "password": "short"}
        )
        assert short.status_code == 400 and "at least 10" in short.text
    async with httpx.AsyncClient(base_url=server) as client:
        page = await client.get("/console/login")
        token = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
        assert token is not None
        form = {"login_csrf": token.group(1), "username": nana, "password": "north star 123"}
        signed = await client.post("/console/login", data=form)
        assert signed.status_code == 303 and signed.headers["location"] == "/console/playground"
