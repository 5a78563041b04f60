"""Metadata of collections, documents, chunks, sync sources and sync reports (SQLAlchemy 2).

Tables live on their own ``CatalogBase`` and their own Alembic migrations
(``luodi/knowledge/migrations``, version table ``kb_alembic_version``), which
``open_catalog`` runs. Chunk texts are kept here, so the BM25 index is rebuilt from the
catalog at start-up and erasure has one place to delete text. The queries several
knowledge modules share (``require_collection``, ``chunk_entries``, ``chunk_hits``)
live here too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from luodi.errors import NotFoundError
from luodi.knowledge.access import Caller, document_tags
from luodi.knowledge.types import Hit, Payload

__all__ = [
    "VERSION_TABLE",
    "CatalogBase",
    "ChunkRow",
    "CollectionRow",
    "DocumentRow",
    "JobRow",
    "SourceRow",
    "SyncReportRow",
    "chunk_entries",
    "chunk_hits",
    "chunk_payloads",
    "collection_names",
    "collection_scope",
    "open_catalog",
    "require_collection",
    "sees_collection",
    "truncate_wal",
]

VERSION_TABLE = "kb_alembic_version"
"""Alembic's version table of the catalog (apart from ``luodi.storage``'s)."""
_MIGRATIONS = Path(__file__).parent / "migrations"
# Arbitrary constant, not luodi.storage's: replicas on PostgreSQL migrate one at a time.
_MIGRATION_LOCK_ID = 0x6C756F646B62


def _now() -> datetime:
    return datetime.now(UTC)


class CatalogBase(DeclarativeBase):
    """Declarative base of the knowledge-base tables."""


class CollectionRow(CatalogBase):
    """A knowledge base: one tenant's (``tenant``) unless ``shared``; see ``access.py``."""

    __tablename__ = "kb_collections"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128), default="")
    """Who created it (a user name), for display only."""
    tenant: Mapped[str | None] = mapped_column(String(128), default=None)
    """The owning tenant; None: none yet (only managers see it unless shared)."""
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    """Seen by readers of every tenant; each still sees only documents its ACL allows."""
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    embedder: Mapped[str | None] = mapped_column(String(256), default=None)
    """``name/dim`` of the model its vectors came from; None: not recorded yet (made
    before revision 0003, or empty). Searching with another model is refused until
    ``luodi kb reembed`` re-embeds it."""


class DocumentRow(CatalogBase):
    """One ingested file; ``name`` (file name, source-relative path or URL) is unique per
    collection and owner scope, never across scopes."""

    __tablename__ = "kb_documents"
    __table_args__ = (
        UniqueConstraint(
            "collection", "name", "owner", name="uq_kb_documents_collection_name_owner"
        ),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    collection: Mapped[str] = mapped_column(
        ForeignKey("kb_collections.name", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(1024))
    owner: Mapped[str] = mapped_column(String(160), default="")
    """Owner scope, ``tenant:<name>``; "": indexed before tenancy (managers only)."""
    content_hash: Mapped[str] = mapped_column(String(64))
    access: Mapped[list[str]] = mapped_column(JSON, default=list)
    meta: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    source_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    n_chunks: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    chunks: Mapped[list[ChunkRow]] = relationship(
        back_populates="document", cascade="all, delete-orphan", passive_deletes=True
    )


class ChunkRow(CatalogBase):
    """A chunk's text and position."""

    __tablename__ = "kb_chunks"
    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    document_id: Mapped[str] = mapped_column(
        ForeignKey("kb_documents.id", ondelete="CASCADE"), index=True
    )
    collection: Mapped[str] = mapped_column(String(64), index=True)
    position: Mapped[int] = mapped_column(Integer)
    heading: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text)
    document: Mapped[DocumentRow] = relationship(back_populates="chunks")


class SourceRow(CatalogBase):
    """A place documents are synced from: a folder, a list of files or URLs."""

    __tablename__ = "kb_sources"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    collection: Mapped[str] = mapped_column(
        ForeignKey("kb_collections.name", ondelete="CASCADE"), index=True
    )
    locations: Mapped[list[str]] = mapped_column(JSON)
    owner: Mapped[str] = mapped_column(String(160), default="")
    """Owner scope of the documents this source syncs."""
    schedule: Mapped[str | None] = mapped_column(String(128), default=None)
    access: Mapped[list[str]] = mapped_column(JSON, default=list)
    meta: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    last_sync_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class SyncReportRow(CatalogBase):
    """What one sync of a source did."""

    __tablename__ = "kb_sync_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(String(32), index=True)
    trigger: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    report: Mapped[dict[str, Any]] = mapped_column(JSON)


class JobRow(CatalogBase):
    """A background ingest, sync or re-embedding job and its progress (``jobs.py``)."""

    __tablename__ = "kb_jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    collection: Mapped[str] = mapped_column(String(64), index=True)
    owner: Mapped[str] = mapped_column(String(160), default="")
    """Owner scope of the caller that started it (``tenant:<t>``); "": an operator."""
    state: Mapped[str] = mapped_column(String(16))
    files_total: Mapped[int] = mapped_column(Integer, default=0)
    files_done: Mapped[int] = mapped_column(Integer, default=0)
    chunks_total: Mapped[int] = mapped_column(Integer, default=0)
    chunks_done: Mapped[int] = mapped_column(Integer, default=0)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    """Heartbeat of the process running or holding it; a stale one means it was lost."""


def open_catalog(url: str) -> Engine:
    """An engine on ``url`` with the schema migrated; SQLite gets WAL and secure delete.

    ``secure_delete`` overwrites freed pages with zeros, so erased chunk text does
    not linger in the database file (``truncate_wal`` empties the WAL after an erasure).
    """
    engine = create_engine(
        url, connect_args={"check_same_thread": False} if url.startswith("sqlite") else {}
    )
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    migrate(engine)
    return engine


def migrate(engine: Engine) -> None:
    """Upgrade the catalog to the newest shipped revision (idempotent).

    A catalog an older luodi made with ``create_all`` has the tables but no version
    table: it is stamped at ``0001`` (that schema) first. On PostgreSQL an advisory
    lock keeps replicas from migrating at once.
    """
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    postgres = engine.dialect.name == "postgresql"
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if postgres:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            connection.commit()
        if sqlite:
            # Batch mode recreates tables; with foreign keys on, dropping the old
            # kb_documents would cascade into kb_chunks. (A no-op inside a transaction.)
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        try:
            config.attributes["connection"] = connection
            tables = set(inspect(connection).get_table_names())
            if "kb_collections" in tables and VERSION_TABLE not in tables:
                command.stamp(config, "0001")
            command.upgrade(config, "head")
            connection.commit()
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            if postgres:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID}
                )
                connection.commit()


def truncate_wal(engine: Engine) -> None:
    """Checkpoint SQLite's WAL into the file and truncate it (no-op elsewhere).

    ``secure_delete`` zeroes freed pages of the database file, but until a checkpoint
    the WAL still holds the pages as they were before the erasure.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def collection_names(session: Session) -> list[str]:
    """Names of every collection, sorted."""
    return list(session.scalars(select(CollectionRow.name).order_by(CollectionRow.name)))


def require_collection(session: Session, name: str, caller: Caller | None = None) -> CollectionRow:
    """The collection ``name``; NotFoundError (param ``kb``) unless it exists and ``caller``
    (None: trusted) may see it, with the same message either way."""
    row = session.get(CollectionRow, name)
    if row is None or (caller is not None and not sees_collection(caller, row)):
        raise NotFoundError(f"knowledge base {name!r} not found", param="kb")
    return row


def sees_collection(caller: Caller, row: CollectionRow) -> bool:
    """Whether ``caller`` sees a collection: shared, its tenant's, or one it manages."""
    return (
        row.shared
        or (row.tenant is not None and row.tenant == caller.tenant)
        or caller.manages(row.name)
    )


def collection_scope(row: CollectionRow) -> str:
    """The owner scope trusted writers (CLI, syncs) use in a collection: its tenant's."""
    return f"tenant:{row.tenant}" if row.tenant else ""


def chunk_entries(session: Session, collection: str) -> Iterator[tuple[str, str, Payload]]:
    """Every chunk of a collection as ``(id, indexed text, payload)``, to rebuild an index."""
    rows = session.execute(
        select(
            ChunkRow.id,
            ChunkRow.heading,
            ChunkRow.text,
            DocumentRow.id,
            DocumentRow.owner,
            DocumentRow.access,
            DocumentRow.meta,
        )
        .join(DocumentRow, ChunkRow.document_id == DocumentRow.id)
        .where(ChunkRow.collection == collection)
    )
    for cid, heading, body, doc_id, owner, acc, meta in rows:
        yield (
            cid,
            f"{heading}\n{body}" if heading else body,
            Payload(doc_id, document_tags(owner, acc), meta),
        )


def chunk_payloads(session: Session, collection: str) -> Iterator[tuple[str, Payload]]:
    """Every chunk id of a collection with its payload, without the text (to check that
    a saved index still describes the catalog)."""
    rows = session.execute(
        select(ChunkRow.id, DocumentRow.id, DocumentRow.owner, DocumentRow.access, DocumentRow.meta)
        .join(DocumentRow, ChunkRow.document_id == DocumentRow.id)
        .where(ChunkRow.collection == collection)
    )
    for cid, doc_id, owner, acc, meta in rows:
        yield cid, Payload(doc_id, document_tags(owner, acc), meta)


def chunk_hits(session: Session, fused: Sequence[tuple[str, str, float]]) -> list[Hit]:
    """Hits for ``(collection, chunk_id, score)`` triples, in order; unknown ids are skipped."""
    # One query with the document's name joined in (not one lazy load per hit).
    rows = {
        chunk.id: (chunk, name)
        for chunk, name in session.execute(
            select(ChunkRow, DocumentRow.name)
            .join(DocumentRow, ChunkRow.document_id == DocumentRow.id)
            .where(ChunkRow.id.in_([c for _, c, _ in fused]))
        )
    }
    return [
        Hit(
            cid,
            rows[cid][0].document_id,
            rows[cid][1],
            rows[cid][0].position,
            rows[cid][0].text,
            score,
            rows[cid][0].heading,
            name,
        )
        for name, cid, score in fused
        if cid in rows
    ]
