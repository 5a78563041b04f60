"""The security epoch: one counter that invalidates every gateway's key cache.

Every change that can narrow what a key may do (revoking it, disabling its user,
changing or taking away a role) bumps the counter in the same transaction. Each
request reads the counter once, on a raw DBAPI connection (a few microseconds on
SQLite, one round trip on PostgreSQL), and trusts its cached Principal only if the
counter has not moved: revocation still applies on the very next request, on every
replica, without re-resolving the key's user, tenant and roles each time.
"""

from __future__ import annotations

import threading
from typing import Any, cast

from sqlalchemy import Table, update
from sqlalchemy.orm import Session

from luodi.storage import Database, SecurityEpochRow

__all__ = ["EpochReader", "bump_epoch"]

_EPOCH = cast(Table, SecurityEpochRow.__table__)
_READ = "SELECT value FROM security_epoch WHERE id = 1"


def bump_epoch(session: Session) -> None:
    """Invalidate every cached key, as part of the session's transaction."""
    session.execute(update(_EPOCH).where(_EPOCH.c.id == 1).values(value=_EPOCH.c.value + 1))


class EpochReader:
    """Reads the epoch on one dedicated DBAPI connection, reconnecting after errors."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: Any = None
        self._lock = threading.Lock()
        self._errors: type[BaseException] = db.engine.dialect.loaded_dbapi.Error

    def read(self) -> int:
        """The current epoch (raises the driver's error if the database is down)."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._db.engine.raw_connection()
                cursor = self._conn.cursor()
                cursor.execute(_READ)
                value = cursor.fetchone()[0]
                cursor.close()
                self._conn.commit()  # end the snapshot so the next read sees new changes
                return int(value)
            except self._errors:
                self._close_locked()
                raise

    def _close_locked(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
            finally:
                self._conn = None

    def close(self) -> None:
        """Release the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
