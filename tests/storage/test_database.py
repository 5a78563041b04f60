"""Storage: shipped migrations on SQLite and PostgreSQL, WAL mode, settings."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from luodi.config.storage import StorageSettings
from luodi.storage import Base, Database

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pg_or_skip() -> None:
    try:
        import psycopg

        psycopg.connect("host=127.0.0.1 user=postgres dbname=test", connect_timeout=2).close()
    except Exception as exc:  # any failure: skip, saying why
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 unavailable: {exc}")


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageSettings]:
    if request.param == "sqlite":
        yield StorageSettings(database_url=f"sqlite:///{tmp_path / 'nested' / 'luodi.db'}")
        return
    _pg_or_skip()
    import psycopg

    schema = f"luodi_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield StorageSettings(database_url=f"{PG}?options=-csearch_path%3D{schema}")
    finally:
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=test", autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_migrations_create_every_table_and_are_idempotent(
    settings: StorageSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no alembic.ini here: the scripts ship in the package
    db = Database(settings)
    try:
        db.migrate()
        db.migrate()
        tables = set(inspect(db.engine).get_table_names())
        assert set(Base.metadata.tables) | {"alembic_version"} <= tables
        with db.engine.connect() as conn:
            head = conn.execute(text("SELECT seq, hash FROM audit_chain_head")).one()
        assert tuple(head) == (0, "0" * 64)
    finally:
        db.dispose()


def test_migrated_schema_matches_the_models(settings: StorageSettings) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    db = Database(settings)
    try:
        db.migrate()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        db.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    db = Database(StorageSettings(database_url=f"sqlite:///{tmp_path / 'w.db'}"))
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        db.dispose()


def test_default_database_is_a_sqlite_file_under_the_user_data_dir() -> None:
    url = StorageSettings().database_url
    assert url.startswith("sqlite:///") and url.endswith("/.local/share/luodi/luodi.db")


def test_unknown_database_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="mysql"):
        StorageSettings(database_url="mysql://x/y")
