"""The catalog's migrations: an old catalog upgrades and fails closed until assigned.

Run on SQLite and on the real PostgreSQL at 127.0.0.1:5432 (skipped when absent).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from kb_factories import FakePrincipal
from sqlalchemy import create_engine, inspect, text

from luodi.errors import NotFoundError
from luodi.knowledge import KnowledgeService
from luodi.knowledge.access import Caller
from luodi.knowledge.catalog import VERSION_TABLE, open_catalog
from tests.security.conftest import (
    _postgres_available,
    drop_postgres_schema,
    make_postgres_schema,
)

Make = Callable[..., KnowledgeService]
MIGRATIONS = Path(__file__).parents[2] / "luodi" / "knowledge" / "migrations"


@pytest.fixture(params=["sqlite", "postgres"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
        return
    reason = _postgres_available()
    if reason:
        pytest.skip(reason)
    schema, url = make_postgres_schema()
    try:
        yield url
    finally:
        drop_postgres_schema(schema)


def _old_catalog(url: str, *, version_table: bool) -> None:
    """A catalog as luodi made it before tenancy, holding one collection and document."""
    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.commit()
        if not version_table:  # made by create_all: no version table at all
            connection.execute(text(f"DROP TABLE {VERSION_TABLE}"))
        now = datetime.now(UTC)
        connection.execute(
            text(
                "INSERT INTO kb_collections (name, owner, description, created_at) "
                "VALUES ('faq', 'li', '', :now)"
            ),
            {"now": now},
        )
        connection.execute(
            text(
                "INSERT INTO kb_documents (id, collection, name, content_hash, access, meta, "
                "n_chunks, size_bytes, updated_at) VALUES (:id, 'faq', 'hours.txt', 'x', "
                "'[]', '{}', 0, 1, :now)"
            ),
            {"id": uuid.uuid4().hex, "now": now},
        )
        connection.commit()
    engine.dispose()


@pytest.mark.parametrize("version_table", [True, False])
def test_old_catalog_upgrades_and_its_collections_wait_for_a_tenant(
    make_service: Make, catalog_url: str, version_table: bool
) -> None:
    _old_catalog(catalog_url, version_table=version_table)
    service = make_service(database_url=catalog_url)
    columns = {c["name"] for c in inspect(service._engine).get_columns("kb_documents")}
    assert "owner" in columns
    acme = FakePrincipal("acme", ["developer"])
    assert service.list_collections(acme) == []
    with pytest.raises(NotFoundError):
        service.list_documents("faq", acme)
    manager = Caller("ops", may=lambda p: p == "kb:faq:manage")
    assert [d.name for d in service.list_documents("faq", manager)] == ["hours.txt"]
    info = service.update_collection("faq", caller=manager, tenant="acme")
    assert info.tenant == "acme"
    assert [d.name for d in service.list_documents("faq", acme)] == ["hours.txt"]
    with pytest.raises(NotFoundError):
        service.list_documents("faq", FakePrincipal("globex", ["developer"]))
    # The adopted document now belongs to acme: its developers may replace it.
    report = service.ingest("faq", [("hours.txt", b"Open nine to five.")], caller=Caller("acme"))
    assert report.updated == ["hours.txt"]
    service.close()


def test_migrating_twice_is_a_no_op(catalog_url: str) -> None:
    open_catalog(catalog_url).dispose()
    engine = open_catalog(catalog_url)
    with engine.connect() as connection:
        assert connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == (
            "0003"
        )
    engine.dispose()
