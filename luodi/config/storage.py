"""Storage settings: which database holds keys, users, roles and the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator


def _default_database_url() -> str:
    data_home = Path.home() / ".local" / "share" / "luodi"
    return f"sqlite:///{data_home / 'luodi.db'}"


class StorageSettings(BaseModel):
    """The relational store: a SQLite file (WAL) by default, PostgreSQL by URL."""

    database_url: str = Field(default_factory=_default_database_url)
    """SQLAlchemy URL. ``sqlite:///path/to/file.db`` (the default lives under
    ``~/.local/share/luodi``) or ``postgresql+psycopg://user@host:5432/db``; for
    PostgreSQL a schema can be chosen with ``?options=-csearch_path%3Dname``."""

    migrate_on_start: bool = True
    """Run the shipped Alembic migrations up to head when the gateway starts."""

    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    """SQLite ``PRAGMA synchronous`` in WAL mode. NORMAL: a commit survives a crash of
    the process (the audit guarantee) but not of the OS or power; FULL: each commit
    is fsynced too, at one fsync per audit batch."""

    postgres_synchronous_commit: Literal["on", "off"] = "on"
    """PostgreSQL ``synchronous_commit`` for luodi's sessions. ``on``: a commit is
    flushed to the server's WAL on disk before it returns. ``off``: a commit survives a
    crash of the gateway but the last few hundred ms may be lost if the PostgreSQL
    server itself crashes; audit commits get several times cheaper."""

    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    """How long a SQLite writer waits for another writer's lock before failing."""

    pool_size: int = Field(default=5, ge=1, le=200)
    """Connections kept open to PostgreSQL (ignored for SQLite)."""

    echo: bool = False
    """Log every SQL statement (debugging only)."""

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError(
                f"storage.database_url={value!r}: only sqlite:// and postgresql:// are supported"
            )
        return value
