"""Conversation sessions of the assistants: what one holds, and the store in the platform database.

A session is keyed by assistant and conversation (``<tenant>:<client id>``, so tenants
never share one) and holds the slots collected so far, the intent history, the hand-off
mark and a trimmed transcript. It expires ``support.session_ttl_s`` after its last turn;
an expired session reads as a new one and is deleted by the next purge.

``SessionStore`` is what a store does; ``support.session_store`` picks one:
``DatabaseSessionStore`` (table ``support_sessions`` in the platform database, SQLite or
PostgreSQL, with its own migrations and version table beside ``luodi.storage``'s) or
``RedisSessionStore`` (``redis_sessions.py``), for many gateway replicas.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, BigInteger, Boolean, String, delete, select, text, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from luodi.config.storage import StorageSettings
from luodi.storage import Database

__all__ = [
    "VERSION_TABLE",
    "DatabaseSessionStore",
    "SessionBase",
    "SessionRow",
    "SessionStore",
    "SupportSession",
]

VERSION_TABLE = "support_alembic_version"
_MIGRATIONS = Path(__file__).parent / "migrations"
# Arbitrary constant: the PostgreSQL advisory lock replicas take to migrate one at a time.
_MIGRATION_LOCK_ID = 0x6C756F6473
_TRANSCRIPT = 40
"""Messages of a transcript kept (the model sees ``support.history_turns`` of them)."""
_INTENTS = 20


def _now_us() -> int:
    return time.time_ns() // 1000


class SessionBase(DeclarativeBase):
    """Declarative base of the support tables (their own metadata and migrations)."""


class SessionRow(SessionBase):
    """One conversation with one assistant."""

    __tablename__ = "support_sessions"

    assistant: Mapped[str] = mapped_column(String(64), primary_key=True)
    conversation: Mapped[str] = mapped_column(String(320), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    handoff: Mapped[bool] = mapped_column(Boolean, index=True)
    created_us: Mapped[int] = mapped_column(BigInteger)
    updated_us: Mapped[int] = mapped_column(BigInteger)
    expires_us: Mapped[int] = mapped_column(BigInteger, index=True)


@dataclass
class SupportSession:
    """What an assistant remembers of one conversation."""

    assistant: str
    conversation: str
    tenant: str
    slots: dict[str, str] = field(default_factory=dict)
    pending: str | None = None
    """The intent whose slots are being collected."""
    intents: list[dict[str, Any]] = field(default_factory=list)
    low_streak: int = 0
    """Consecutive turns recognised with low confidence (escalation)."""
    transcript: list[dict[str, str]] = field(default_factory=list)
    handoff: bool = False
    handoff_reason: str | None = None
    created_us: int = field(default_factory=_now_us)
    new: bool = True

    def remember(self, role: str, content: str) -> None:
        """Add a message to the transcript, keeping the most recent ones."""
        self.transcript.append({"role": role, "content": content})
        del self.transcript[:-_TRANSCRIPT]

    def note_intent(self, record: dict[str, Any]) -> None:
        self.intents.append(record)
        del self.intents[:-_INTENTS]

    def state(self) -> dict[str, Any]:
        return {
            "slots": self.slots,
            "pending": self.pending,
            "intents": self.intents,
            "low_streak": self.low_streak,
            "transcript": self.transcript,
            "handoff_reason": self.handoff_reason,
        }

    def wire(self) -> dict[str, Any]:
        """The admin API's view of a session."""
        return {
            "assistant": self.assistant,
            "conversation": self.conversation,
            "tenant": self.tenant,
            "handoff": self.handoff,
            **self.state(),
        }

    @classmethod
    def from_state(
        cls,
        assistant: str,
        conversation: str,
        tenant: str,
        state: dict[str, Any],
        *,
        handoff: bool,
        created_us: int,
    ) -> SupportSession:
        """A stored session from its parts (``state()`` as written)."""
        return cls(
            assistant,
            conversation,
            tenant,
            slots=dict(state.get("slots") or {}),
            pending=state.get("pending"),
            intents=list(state.get("intents") or []),
            low_streak=int(state.get("low_streak") or 0),
            transcript=list(state.get("transcript") or []),
            handoff=handoff,
            handoff_reason=state.get("handoff_reason"),
            created_us=created_us,
            new=False,
        )

    @classmethod
    def of(cls, row: SessionRow) -> SupportSession:
        return cls.from_state(
            row.assistant,
            row.conversation,
            row.tenant,
            row.state or {},
            handoff=row.handoff,
            created_us=row.created_us,
        )


class SessionStore(Protocol):
    """Where sessions live; every method is synchronous (run it in a worker thread)."""

    def load(self, assistant: str, conversation: str, tenant: str) -> SupportSession:
        """The live session, or a new one (an expired session is a new one)."""
        ...

    def save(self, session: SupportSession) -> None:
        """Write the session and push its expiry ``ttl`` past now."""
        ...

    def get(self, assistant: str, conversation: str) -> SupportSession | None:
        """The session as stored, if live."""
        ...

    def list(
        self, *, assistant: str | None = None, handoff: bool | None = None, limit: int = 100
    ) -> list[SupportSession]:
        """Live sessions, most recent first."""
        ...

    def release(self, assistant: str, conversation: str) -> bool:
        """Hand a session back to the assistant; False when there is none."""
        ...

    def erase(self, assistant: str, conversation: str) -> bool:
        """Delete a session and everything it remembers (GDPR erasure)."""
        ...

    def purge_expired(self) -> int:
        """Delete what expired sessions left; returns how many."""
        ...

    def close(self) -> None: ...


class DatabaseSessionStore:
    """Sessions in the platform database; every method is synchronous."""

    def __init__(self, settings: StorageSettings, *, ttl_s: float) -> None:
        self._db = Database(settings)
        self._ttl_us = int(ttl_s * 1_000_000)
        self._migrated = False
        self._lock = threading.Lock()
        self._writes = 0

    def _ready(self) -> Database:
        with self._lock:
            if not self._migrated:
                _migrate(self._db)
                self._migrated = True
        return self._db

    def load(self, assistant: str, conversation: str, tenant: str) -> SupportSession:
        """The live session, or a new one (an expired session is a new one)."""
        with self._ready().session() as db:
            row = db.get(SessionRow, (assistant, conversation))
            if row is None or row.expires_us <= _now_us():
                return SupportSession(assistant, conversation, tenant)
            return SupportSession.of(row)

    def save(self, session: SupportSession) -> None:
        """Write the session and push its expiry ``ttl`` past now."""
        now = _now_us()
        with self._ready().session() as db:
            row = db.get(SessionRow, (session.assistant, session.conversation))
            if row is None:
                row = SessionRow(
                    assistant=session.assistant,
                    conversation=session.conversation,
                    created_us=session.created_us,
                )
                db.add(row)
            row.tenant = session.tenant
            row.state = session.state()
            row.handoff = session.handoff
            row.updated_us = now
            row.expires_us = now + self._ttl_us
        session.new = False
        self._writes += 1
        if self._writes % 100 == 0:
            self.purge_expired()

    def get(self, assistant: str, conversation: str) -> SupportSession | None:
        """The session as stored, if live."""
        with self._ready().session() as db:
            row = db.get(SessionRow, (assistant, conversation))
            if row is None or row.expires_us <= _now_us():
                return None
            return SupportSession.of(row)

    def list(
        self, *, assistant: str | None = None, handoff: bool | None = None, limit: int = 100
    ) -> list[SupportSession]:
        """Live sessions, most recent first."""
        query = select(SessionRow).where(SessionRow.expires_us > _now_us())
        if assistant is not None:
            query = query.where(SessionRow.assistant == assistant)
        if handoff is not None:
            query = query.where(SessionRow.handoff == handoff)
        query = query.order_by(SessionRow.updated_us.desc()).limit(limit)
        with self._ready().session() as db:
            return [SupportSession.of(row) for row in db.scalars(query)]

    def release(self, assistant: str, conversation: str) -> bool:
        """Hand a session back to the assistant; False when there is none."""
        with self._ready().session() as db:
            done = db.execute(
                update(SessionRow)
                .where(SessionRow.assistant == assistant, SessionRow.conversation == conversation)
                .values(handoff=False)
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def erase(self, assistant: str, conversation: str) -> bool:
        """Delete a session and everything it remembers (GDPR erasure)."""
        with self._ready().session() as db:
            done = db.execute(
                delete(SessionRow).where(
                    SessionRow.assistant == assistant, SessionRow.conversation == conversation
                )
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def purge_expired(self) -> int:
        """Delete every expired session; returns how many."""
        with self._ready().session() as db:
            done = db.execute(delete(SessionRow).where(SessionRow.expires_us <= _now_us()))
            return int(done.rowcount)  # type: ignore[attr-defined]

    def close(self) -> None:
        self._db.dispose()


def _migrate(database: Database) -> None:
    """Upgrade the session table to the newest shipped revision (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with database.engine.connect() as connection:
        if not database.is_sqlite:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
        finally:
            if not database.is_sqlite:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID}
                )
                connection.commit()
