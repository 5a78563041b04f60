"""Fixtures: a Gateway on a real SQLite file or a real PostgreSQL schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from luodi.api.app import create_app
from luodi.config import Settings
from luodi.config.security import SecuritySettings
from luodi.config.storage import StorageSettings
from luodi.security import Gateway, Principal

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def _postgres_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=2
        ):
            return None
    except Exception as exc:  # any failure means: skip, saying why
        return f"PostgreSQL at 127.0.0.1:5432 unavailable: {exc}"


def make_postgres_schema() -> tuple[str, str]:
    """Create a fresh schema; returns (schema, url using it)."""
    import psycopg

    schema = f"luodi_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema, f"{PG_URL}?options=-csearch_path%3D{schema}"


def drop_postgres_schema(schema: str) -> None:
    """Drop a schema made by ``make_postgres_schema``."""
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageSettings]:
    """Storage settings for each real backend."""
    if request.param == "sqlite":
        yield StorageSettings(database_url=f"sqlite:///{tmp_path / 'luodi.db'}")
        return
    reason = _postgres_available()
    if reason:
        pytest.skip(reason)
    schema, url = make_postgres_schema()
    try:
        yield StorageSettings(database_url=url)
    finally:
        drop_postgres_schema(schema)


@pytest.fixture
def sqlite_storage(tmp_path: Path) -> StorageSettings:
    """Storage settings on a fresh SQLite file."""
    return StorageSettings(database_url=f"sqlite:///{tmp_path / 'luodi.db'}")


@pytest.fixture
async def gateway(storage: StorageSettings) -> AsyncIterator[Gateway]:
    """A Gateway with default security settings on each backend."""
    gw = await Gateway.create(SecuritySettings(), storage)
    try:
        yield gw
    finally:
        await gw.close()


@pytest.fixture
async def sqlite_gateway(sqlite_storage: StorageSettings) -> AsyncIterator[Gateway]:
    """A Gateway with default security settings on SQLite only."""
    gw = await Gateway.create(SecuritySettings(), sqlite_storage)
    try:
        yield gw
    finally:
        await gw.close()


def make_user(gw: Gateway, name: str, roles: list[str], tenant: str = "default") -> None:
    """Create a user (and its tenant if new)."""
    if tenant not in {t.name for t in gw.directory.list_tenants()}:
        gw.directory.create_tenant(tenant)
    gw.directory.create_user(name, tenant=tenant, roles=roles)


def bearer(secret: str) -> str:
    """An Authorization header value."""
    return f"Bearer {secret}"


async def principal_for(gw: Gateway, user: str, roles: list[str], **key_args: object) -> Principal:
    """Create a user and a key, and authenticate with it."""
    make_user(gw, user, roles)
    created = gw.keys.create(user, **key_args)  # type: ignore[arg-type]
    return await gw.authenticate(bearer(created.secret), "127.0.0.1")


@pytest.fixture
async def client(
    sqlite_gateway: Gateway, sqlite_storage: StorageSettings
) -> AsyncIterator[httpx.AsyncClient]:
    """The app ``create_app`` builds (no engines) over the test's gateway."""
    app = create_app(
        Settings(storage=sqlite_storage), engines={}, embedders={}, gateway=sqlite_gateway
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as c,
    ):
        yield c
