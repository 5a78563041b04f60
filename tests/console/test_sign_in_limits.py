"""Sign-in limits without a browser: passwords, the per-address rate, session expiry."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from luodi.api.app import create_app
from luodi.config import KnowledgeSettings, Settings
from luodi.config.console import ConsoleSettings
from luodi.errors import InvalidRequestError
from luodi.security import Gateway
from luodi.security.passwords import PasswordStore, SignIn, hash_password, verify_password
from luodi.storage import ConsoleSessionRow
from tests.conftest import make_key, served


def test_a_password_hash_verifies_only_its_password() -> None:
    stored = hash_password("correct horse 1")
    assert stored.startswith("scrypt$32768$8$1$")
    assert verify_password("correct horse 1", stored)
    assert not verify_password("correct horse 2", stored)
    assert not verify_password("correct horse 1", "md5$abc")
    assert hash_password("correct horse 1") != stored  # a fresh salt each time


async def test_short_passwords_are_refused_and_the_lockout_lifts(
    live_gateway: Gateway,
) -> None:
    make_key(live_gateway, "limits-pw", ["developer"])
    store = PasswordStore(live_gateway.db)
    with pytest.raises(InvalidRequestError):
        store.set("limits-pw", "short")
    store.set("limits-pw", "long enough pw")
    assert store.check("limits-pw", "nope", failures=2, lock_s=0.5) is SignIn.WRONG
    assert store.check("limits-pw", "nope", failures=2, lock_s=0.5) is SignIn.LOCKED
    assert store.check("limits-pw", "long enough pw", failures=2, lock_s=0.5) is SignIn.LOCKED
    await asyncio.sleep(0.6)
    assert store.check("limits-pw", "long enough pw", failures=2, lock_s=0.5) is SignIn.OK
    assert store.check("nobody-here", "long enough pw", failures=2, lock_s=0.5) is SignIn.WRONG


@pytest.fixture
async def strict_server(
    live_gateway: Gateway, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A server without models whose console allows 3 sign-ins a minute per address."""
    settings = Settings(
        knowledge=KnowledgeSettings(data_dir=tmp_path_factory.mktemp("kb")),
        console=ConsoleSettings(sign_in_per_minute=3),
    )
    app = create_app(settings, engines={}, embedders={}, gateway=live_gateway)
    async with served(app) as url:
        yield url


async def _attempt(client: httpx.AsyncClient, key: str) -> httpx.Response:
    page = await client.get("/console/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert token is not None
    return await client.post("/console/login", data={"login_csrf": token.group(1), "api_key": key})


async def test_sign_in_is_rate_limited_per_address(
    strict_server: str, live_gateway: Gateway
) -> None:
    async with httpx.AsyncClient(base_url=strict_server) as client:
        statuses = [(await _attempt(client, "sk-luodi-wrong")).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]


async def test_an_expired_session_signs_out(strict_server: str, live_gateway: Gateway) -> None:
    key = make_key(live_gateway, "limits-expiry", ["developer"])
    async with httpx.AsyncClient(base_url=strict_server) as client:
        assert (await _attempt(client, key)).status_code == 303
        assert (await client.get("/console/playground")).status_code == 200
        with live_gateway.db.session() as session:  # the clock moves on: expire it now
            for row in session.query(ConsoleSessionRow).filter_by(user="limits-expiry"):
                row.expires_us = 0
        gone = await client.get("/console/playground")
        assert gone.status_code == 303 and gone.headers["location"] == "/console/login"
        api = await client.get("/v1/models")
        assert api.status_code == 401
