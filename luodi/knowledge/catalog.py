"""Metadata of collections, documents, chunks, sync sources and sync reports (SQLAlchemy 2).

Tables live on their own ``CatalogBase`` for now; they move into the shared Alembic
migrations of ``luodi.storage`` later. Chunk texts are kept here, so the BM25 index
is rebuilt from the catalog at start-up and erasure has one place to delete text.
The queries several knowledge modules share (``require_collection``, ``chunk_entries``,
``chunk_hits``) live here too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from luodi.errors import NotFoundError
from luodi.knowledge.types import Hit, Payload, access_tags

__all__ = [
    "CatalogBase",
    "ChunkRow",
    "CollectionRow",
    "DocumentRow",
    "SourceRow",
    "SyncReportRow",
    "chunk_entries",
    "chunk_hits",
    "collection_names",
    "open_catalog",
    "require_collection",
]


def _now() -> datetime:
    return datetime.now(UTC)


class CatalogBase(DeclarativeBase):
    """Declarative base of the knowledge-base tables."""


class CollectionRow(CatalogBase):
    """A knowledge base."""

    __tablename__ = "kb_collections"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class DocumentRow(CatalogBase):
    """One ingested file; ``name`` is unique in its collection (file name, path or URL)."""

    __tablename__ = "kb_documents"
    __table_args__ = (UniqueConstraint("collection", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    collection: Mapped[str] = mapped_column(
        ForeignKey("kb_collections.name", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(1024))
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


def open_catalog(url: str) -> Engine:
    """An engine on ``url`` with the tables created; SQLite gets WAL and secure delete.

    ``secure_delete`` overwrites freed pages with zeros, so erased chunk text does
    not linger in the database file.
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

    CatalogBase.metadata.create_all(engine)
    return engine


def collection_names(session: Session) -> list[str]:
    """Names of every collection, sorted."""
    return list(session.scalars(select(CollectionRow.name).order_by(CollectionRow.name)))


def require_collection(session: Session, name: str) -> None:
    """Raise NotFoundError (param ``kb``) unless collection ``name`` exists."""
    if session.get(CollectionRow, name) is None:
        raise NotFoundError(f"knowledge base {name!r} not found", param="kb")


def chunk_entries(session: Session, collection: str) -> Iterator[tuple[str, str, Payload]]:
    """Every chunk of a collection as ``(id, indexed text, payload)``, to rebuild an index."""
    rows = session.execute(
        select(
            ChunkRow.id,
            ChunkRow.heading,
            ChunkRow.text,
            DocumentRow.id,
            DocumentRow.access,
            DocumentRow.meta,
        )
        .join(DocumentRow, ChunkRow.document_id == DocumentRow.id)
        .where(ChunkRow.collection == collection)
    )
    for cid, heading, text, doc_id, acc, meta in rows:
        yield (
            cid,
            f"{heading}\n{text}" if heading else text,
            Payload(doc_id, access_tags(acc), meta),
        )


def chunk_hits(session: Session, fused: Sequence[tuple[str, str, float]]) -> list[Hit]:
    """Hits for ``(collection, chunk_id, score)`` triples, in order; unknown ids are skipped."""
    rows = {
        r.id: r
        for r in session.scalars(select(ChunkRow).where(ChunkRow.id.in_([c for _, c, _ in fused])))
    }
    return [
        Hit(
            cid,
            rows[cid].document_id,
            rows[cid].document.name,
            rows[cid].position,
            rows[cid].text,
            score,
            rows[cid].heading,
            name,
        )
        for name, cid, score in fused
        if cid in rows
    ]
