"""Console forms over HTTP (no browser): key quotas, disabling a user, refusals as pages."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest

from luodi.api.app import create_app
from luodi.config import KnowledgeSettings, Settings
from luodi.security import Gateway
from tests.conftest import make_key, served


@pytest.fixture
async def admin(
    live_gateway: Gateway, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client signed in to a model-less server as an admin, and its CSRF token."""
    settings = Settings(knowledge=KnowledgeSettings(data_dir=tmp_path_factory.mktemp("kb")))
    app = create_app(settings, engines={}, embedders={}, gateway=live_gateway)
    key = make_key(live_gateway, f"forms-admin-{uuid.uuid4().hex[:8]}", ["admin"])
    async with served(app) as url, httpx.AsyncClient(base_url=url) as client:
        page = await client.get("/console/login")
        token = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
        assert token is not None
        signed = await client.post(
            "/console/login", data={"login_csrf": token.group(1), "api_key": key}
        )
        assert signed.status_code == 303
        home = await client.get("/console/keys")
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', home.text)
        assert csrf is not None
        yield client, csrf.group(1)


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
