"""The SQLAlchemy engine and sessions, and running the shipped migrations.

One ``Database`` per process part that needs it, built from ``StorageSettings``;
nothing here is a module global. SQLite runs in WAL mode with a busy timeout so the
audit writer and request handlers can share the file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from luodi.config.storage import StorageSettings

__all__ = ["Database"]

_log = logging.getLogger(__name__)
_MIGRATIONS = Path(__file__).parent / "migrations"
# Arbitrary constant: the PostgreSQL advisory lock replicas take to migrate one at a time.
_MIGRATION_LOCK_ID = 0x6C756F6469


class Database:
    """A connection pool and session factory for one database URL."""

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        url = make_url(settings.database_url)
        self.is_sqlite = url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": settings.echo, "future": True}
        if self.is_sqlite:
            if url.database and url.database != ":memory:":
                Path(url.database).expanduser().parent.mkdir(
                    parents=True, exist_ok=True, mode=0o700
                )
            kwargs["connect_args"] = {
                "timeout": settings.sqlite_busy_timeout_ms / 1000,
                "check_same_thread": False,
            }
        else:
            kwargs["pool_size"] = settings.pool_size
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", self._configure_sqlite)
        else:
            event.listen(self.engine, "connect", self._configure_postgres)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _configure_sqlite(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={self.settings.sqlite_synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={self.settings.sqlite_busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # The audit writer checkpoints in the background instead (see AuditWriter).
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    def _configure_postgres(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET synchronous_commit = {self.settings.postgres_synchronous_commit}")
        cursor.close()
        dbapi_connection.commit()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any error."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def migrate(self) -> None:
        """Upgrade the schema to the newest shipped revision (idempotent).

        Needs no ``alembic.ini``: the migration scripts ship inside the package.
        On PostgreSQL an advisory lock keeps replicas from migrating at once.
        """
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.connect() as connection:
            if not self.is_sqlite:
                connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
                connection.commit()
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            finally:
                if not self.is_sqlite:
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID}
                    )
                    connection.commit()
        _log.debug("database schema at head: %s", self.engine.url.render_as_string())

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
