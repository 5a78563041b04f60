"""``KnowledgeService``: the one object the API, the CLI and the chat route use.

It owns the catalog (SQL), one BM25 index per collection (rebuilt from the catalog
on first use) and the vector store, and keeps them in step: every write changes
all three under one lock, so a search never sees a chunk in one index only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from croniter import croniter
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from luodi.config.knowledge import KnowledgeSettings
from luodi.engine.embeddings import Embedder
from luodi.errors import InvalidRequestError, NotFoundError
from luodi.knowledge.catalog import (
    ChunkRow,
    CollectionRow,
    DocumentRow,
    SourceRow,
    SyncReportRow,
    collection_names,
    open_catalog,
)
from luodi.knowledge.chunking import Chunker
from luodi.knowledge.grounding import citations_of, inject_context, last_user_text
from luodi.knowledge.index.bm25 import BM25Index, Segmenter
from luodi.knowledge.index.vector_store import FlatVectorStore, VectorStore
from luodi.knowledge.loaders import LOADERS, DocumentLoadError, load_document
from luodi.knowledge.retrieval import HybridRetriever, Reranker
from luodi.knowledge.sources import SourceListingError, iter_source
from luodi.knowledge.types import (
    Citation,
    Filter,
    Hit,
    IngestReport,
    Payload,
    Principal,
    access_tags,
    principal_tags,
)

__all__ = ["AuditSink", "CollectionInfo", "DocumentInfo", "KnowledgeService", "Progress"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Progress = Callable[[str], None]
"""Called with a document's name after it is processed (drives the CLI's progress bar)."""


def _vector_store(settings: KnowledgeSettings, dim: int) -> VectorStore:
    """The configured store: flat files under ``data_dir``, or a Qdrant server."""
    if settings.vector_store == "qdrant":
        from luodi.knowledge.index.qdrant_store import QdrantVectorStore

        assert settings.qdrant_url is not None  # the settings validator guarantees it
        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        return QdrantVectorStore.connect(settings.qdrant_url, dim, api_key=key)
    return FlatVectorStore(settings.data_dir / "vectors", dim)


class AuditSink(Protocol):
    """Where erasures and syncs are recorded (the security layer's audit log)."""

    def record(self, action: str, resource: str, detail: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    """A knowledge base as listed to clients."""

    name: str
    owner: str
    description: str
    documents: int
    chunks: int


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """A document as listed to clients."""

    id: str
    collection: str
    name: str
    content_hash: str
    chunks: int
    access: list[str]
    meta: dict[str, str]
    updated_at: datetime


def _doc_info(row: DocumentRow) -> DocumentInfo:
    return DocumentInfo(
        row.id,
        row.collection,
        row.name,
        row.content_hash,
        row.n_chunks,
        list(row.access),
        dict(row.meta),
        row.updated_at,
    )


class KnowledgeService:
    """Collections, ingestion, hybrid search, erasure and sync.

    Args:
        settings: the ``knowledge`` section.
        embedder: the model behind ``/v1/embeddings``; it also sizes chunks.
        store: vector store; None: a ``FlatVectorStore`` in ``settings.data_dir``.
        reranker: optional second stage over the fused candidates.
        audit: records syncs and erasures; None: not recorded beyond sync reports.
        clock: current time (tests pass a fixed one).
    """

    def __init__(
        self,
        settings: KnowledgeSettings,
        embedder: Embedder,
        *,
        store: VectorStore | None = None,
        reranker: Reranker | None = None,
        audit: AuditSink | None = None,
        redact: Callable[[str], str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``redact`` masks personal data in each loaded block before it is indexed."""
        self.settings = settings
        self._redact = redact
        self.embedder = embedder
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._engine = open_catalog(settings.catalog_url())
        self._store = store or _vector_store(settings, embedder.dim)
        self._reranker = reranker
        self._audit = audit
        self._clock = clock
        self._chunker = Chunker(
            embedder.count_tokens, settings.chunk_tokens, settings.chunk_overlap
        )
        self._retriever = HybridRetriever(settings.candidates, settings.rrf_k)
        self._segmenter = Segmenter()
        self._bm25: dict[str, BM25Index] = {}
        self._lock = threading.RLock()
        self._originals = settings.data_dir / "originals"

    # ---- collections -------------------------------------------------------------

    def create_collection(
        self, name: str, owner: str = "", description: str = ""
    ) -> CollectionInfo:
        """Create an empty knowledge base.

        Raises:
            InvalidRequestError: the name is not 1-64 of ``A-Za-z0-9_.-`` or already exists.
        """
        if not _NAME.match(name):
            raise InvalidRequestError(
                f"knowledge base name {name!r} must be 1-64 characters of A-Z a-z 0-9 _ . -",
                param="name",
            )
        with self._lock, Session(self._engine) as session:
            if session.get(CollectionRow, name) is not None:
                raise InvalidRequestError(f"knowledge base {name!r} already exists", param="name")
            session.add(CollectionRow(name=name, owner=owner, description=description))
            session.commit()
        return CollectionInfo(name, owner, description, 0, 0)

    def list_collections(self) -> list[CollectionInfo]:
        """Every knowledge base with its document and chunk counts."""
        with Session(self._engine) as session:
            out = []
            for name in collection_names(session):
                row = session.get(CollectionRow, name)
                assert row is not None
                docs = session.scalars(
                    select(DocumentRow).where(DocumentRow.collection == name)
                ).all()
                out.append(
                    CollectionInfo(
                        name, row.owner, row.description, len(docs), sum(d.n_chunks for d in docs)
                    )
                )
            return out

    def drop_collection(self, name: str) -> None:
        """Delete a knowledge base with all its documents, chunks, vectors and sources."""
        with self._lock, Session(self._engine) as session:
            self._require(session, name)
            for doc in session.scalars(select(DocumentRow).where(DocumentRow.collection == name)):
                self._forget_original(doc.id)
            session.execute(delete(ChunkRow).where(ChunkRow.collection == name))
            session.execute(delete(DocumentRow).where(DocumentRow.collection == name))
            session.execute(delete(SourceRow).where(SourceRow.collection == name))
            session.execute(delete(CollectionRow).where(CollectionRow.name == name))
            session.commit()
            self._store.drop(name)
            self._bm25.pop(name, None)

    # ---- ingestion ---------------------------------------------------------------

    def ingest(
        self,
        collection: str,
        files: Sequence[tuple[str, bytes]],
        *,
        access: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        source_id: str | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Load, chunk, embed and index ``(name, content)`` files.

        A file with a known name is replaced when its content, access list or metadata
        changed and left untouched otherwise. A file that cannot be read is reported
        in ``failed`` by name; the rest of the batch is kept.
        """
        report = IngestReport()
        meta = dict(meta or {})
        with Session(self._engine) as session:
            self._require(session, collection)
        for name, data in files:
            try:
                self._ingest_one(collection, name, data, list(access), meta, source_id, report)
            except DocumentLoadError as exc:
                report.failed[name] = exc.message
            if progress is not None:
                progress(name)
        with self._lock:
            self._store.flush()
        return report

    def ingest_paths(
        self,
        collection: str,
        paths: Sequence[Path],
        *,
        access: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Ingest files and folders (walked for known suffixes); unreadable paths are reported."""
        files: list[tuple[str, bytes]] = []
        failed: dict[str, str] = {}
        for path in paths:
            try:
                for item in iter_source([str(path)], LOADERS):
                    files.append((Path(item.name).name, item.read()))
            except (SourceListingError, OSError) as exc:
                failed[str(path)] = str(exc)
        report = self.ingest(collection, files, access=access, meta=meta, progress=progress)
        report.failed.update(failed)
        return report

    def _ingest_one(
        self,
        collection: str,
        name: str,
        data: bytes,
        access: list[str],
        meta: dict[str, str],
        source_id: str | None,
        report: IngestReport,
    ) -> None:
        digest = hashlib.sha256(data).hexdigest()
        with Session(self._engine) as session:
            existing = session.scalars(
                select(DocumentRow).where(
                    DocumentRow.collection == collection, DocumentRow.name == name
                )
            ).first()
            if existing is not None and (existing.content_hash, existing.access, existing.meta) == (
                digest,
                access,
                meta,
            ):
                report.unchanged.append(name)
                return
        # Parse, chunk and embed outside the lock: the slow part runs concurrently.
        blocks = load_document(name, data, LOADERS)
        if self._redact is not None:
            blocks = [dataclasses.replace(b, text=self._redact(b.text)) for b in blocks]
        chunks = self._chunker.chunk(blocks)
        if not chunks:
            raise DocumentLoadError(f"{name}: no text found")
        inputs = [f"{c.heading}\n{c.text}" if c.heading else c.text for c in chunks]
        vectors = self.embedder.embed(inputs)
        with self._lock, Session(self._engine) as session:
            row = session.scalars(
                select(DocumentRow).where(
                    DocumentRow.collection == collection, DocumentRow.name == name
                )
            ).first()
            if row is None:
                row = DocumentRow(id=uuid.uuid4().hex, collection=collection, name=name)
                session.add(row)
                report.added.append(name)
            else:
                self._unindex(session, collection, [row.id])
                report.updated.append(name)
            row.content_hash, row.access, row.meta = digest, access, meta
            row.source_id, row.n_chunks, row.size_bytes = source_id, len(chunks), len(data)
            row.updated_at = self._clock()
            ids = [f"{row.id}:{c.position}" for c in chunks]
            session.add_all(
                ChunkRow(
                    id=cid,
                    document_id=row.id,
                    collection=collection,
                    position=c.position,
                    heading=c.heading,
                    text=c.text,
                )
                for cid, c in zip(ids, chunks, strict=True)
            )
            session.commit()
            payload = Payload(row.id, access_tags(access), dict(meta))
            self._store.upsert(collection, ids, vectors, [payload] * len(ids))
            self._bm25_of(session, collection).add(
                (cid, text, payload) for cid, text in zip(ids, inputs, strict=True)
            )
            if self.settings.keep_originals:
                self._originals.mkdir(parents=True, exist_ok=True)
                (self._originals / row.id).write_bytes(data)
            report.chunks += len(chunks)

    # ---- search and grounding ----------------------------------------------------

    def search(
        self,
        collections: Sequence[str],
        query: str,
        top_k: int | None = None,
        *,
        principal: Principal | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> list[Hit]:
        """Best passages for ``query`` across ``collections``.

        Args:
            principal: whose access lists apply; None (trusted callers such as the CLI)
                skips the access filter. Permission to read each collection is the
                caller's check (``kb:<name>:read``).
            meta: document metadata that every hit must match exactly.

        Raises:
            NotFoundError: an unknown collection.
        """
        k = top_k or self.settings.top_k
        flt = Filter(principal_tags(principal) if principal is not None else None, dict(meta or {}))
        if not query.strip():
            return []
        query_vector = self.embedder.embed([query])[0]
        fused: list[tuple[str, str, float]] = []
        with self._lock, Session(self._engine) as session:
            for name in collections:
                self._require(session, name)
                bm25 = self._bm25_of(session, name)
                for cid, score in self._retriever.search(
                    name, query, query_vector, bm25, self._store, flt
                ):
                    fused.append((name, cid, score))
            fused.sort(key=lambda t: t[2], reverse=True)
            fused = fused[: max(k, self.settings.candidates if self._reranker else k)]
            rows = {
                r.id: r
                for r in session.scalars(
                    select(ChunkRow).where(ChunkRow.id.in_([c for _, c, _ in fused]))
                )
            }
            hits = [
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
        if self._reranker is not None and hits:
            scores = self._reranker.score(query, [h.text for h in hits])
            order = sorted(range(len(hits)), key=lambda i: scores[i], reverse=True)
            hits = [
                Hit(
                    hits[i].chunk_id,
                    hits[i].doc_id,
                    hits[i].document,
                    hits[i].position,
                    hits[i].text,
                    scores[i],
                    hits[i].heading,
                    hits[i].collection,
                )
                for i in order
            ]
        return hits[:k]

    async def ground(
        self,
        messages: Sequence[Mapping[str, Any]],
        kb_names: Sequence[str],
        top_k: int | None,
        principal: Principal | None,
    ) -> tuple[list[dict[str, Any]], list[Citation]]:
        """Chat messages with numbered passages for the last user turn, and their citations.

        Runs retrieval in a worker thread. Messages come back unchanged (copied) when
        nothing is found.
        """
        query = last_user_text(messages)
        hits = await asyncio.to_thread(self.search, kb_names, query, top_k, principal=principal)
        return inject_context(messages, hits), citations_of(hits, self.settings.snippet_chars)

    # ---- documents and erasure ----------------------------------------------------

    def list_documents(
        self, collection: str, principal: Principal | None = None
    ) -> list[DocumentInfo]:
        """Documents of a collection that ``principal`` may see (all for None)."""
        with Session(self._engine) as session:
            self._require(session, collection)
            rows = session.scalars(
                select(DocumentRow)
                .where(DocumentRow.collection == collection)
                .order_by(DocumentRow.name)
            ).all()
            flt = Filter(principal_tags(principal)) if principal is not None else None
            return [
                _doc_info(r)
                for r in rows
                if flt is None or flt.matches(Payload(r.id, access_tags(r.access), r.meta))
            ]

    def get_document(
        self, collection: str, doc_id: str, principal: Principal | None = None
    ) -> DocumentInfo:
        """One document; NotFoundError also when ``principal`` may not see it."""
        for info in self.list_documents(collection, principal):
            if info.id == doc_id:
                return info
        raise NotFoundError(f"document {doc_id!r} not found in knowledge base {collection!r}")

    def original(
        self, collection: str, doc_id: str, principal: Principal | None = None
    ) -> tuple[str, bytes]:
        """The uploaded file ``(name, bytes)``; ``kb:<name>:download`` is the caller's check."""
        info = self.get_document(collection, doc_id, principal)
        path = self._originals / info.id
        if not path.is_file():
            raise NotFoundError(f"the original file of document {doc_id!r} is not kept")
        return info.name, path.read_bytes()

    def delete_document(self, collection: str, doc_id: str, *, actor: str = "") -> None:
        """Remove a document with every chunk, vector and kept original."""
        self.get_document(collection, doc_id)
        self._erase(collection, [doc_id], actor=actor, reason=f"document {doc_id}")

    def erase(
        self, key: str, value: str, *, collections: Sequence[str] | None = None, actor: str = ""
    ) -> int:
        """Right to erasure: delete every document whose metadata ``key`` equals ``value``.

        Returns the number of documents removed, across ``collections`` (None: all).
        """
        with Session(self._engine) as session:
            names = list(collections) if collections is not None else collection_names(session)
            removed = 0
            for name in names:
                ids = [
                    d.id
                    for d in session.scalars(
                        select(DocumentRow).where(DocumentRow.collection == name)
                    )
                    if d.meta.get(key) == value
                ]
                if ids:
                    self._erase(name, ids, actor=actor, reason=f"{key}={value}")
                    removed += len(ids)
        return removed

    def _erase(self, collection: str, doc_ids: list[str], *, actor: str, reason: str) -> None:
        with self._lock, Session(self._engine) as session:
            self._unindex(session, collection, doc_ids)
            session.execute(delete(DocumentRow).where(DocumentRow.id.in_(doc_ids)))
            session.commit()
            self._store.flush()
            for doc_id in doc_ids:
                self._forget_original(doc_id)
        if self._audit is not None:
            self._audit.record(
                "kb.erase",
                f"kb:{collection}",
                {"documents": doc_ids, "reason": reason, "actor": actor},
            )

    def _unindex(self, session: Session, collection: str, doc_ids: list[str]) -> None:
        chunk_ids = list(
            session.scalars(select(ChunkRow.id).where(ChunkRow.document_id.in_(doc_ids)))
        )
        self._store.delete(collection, chunk_ids)
        self._bm25_of(session, collection).remove(chunk_ids)
        session.execute(delete(ChunkRow).where(ChunkRow.document_id.in_(doc_ids)))

    def _forget_original(self, doc_id: str) -> None:
        (self._originals / doc_id).unlink(missing_ok=True)

    # ---- sources and sync ------------------------------------------------------------

    def add_source(
        self,
        collection: str,
        locations: Sequence[str],
        *,
        schedule: str | None = None,
        access: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
    ) -> str:
        """Register folders, files or local-network URLs to sync; returns the source id.

        Raises:
            InvalidRequestError: ``schedule`` is not a valid cron expression.
        """
        if schedule is not None and not croniter.is_valid(schedule):
            raise InvalidRequestError(
                f"schedule {schedule!r} is not a cron expression", param="schedule"
            )
        source_id = uuid.uuid4().hex
        with self._lock, Session(self._engine) as session:
            self._require(session, collection)
            session.add(
                SourceRow(
                    id=source_id,
                    collection=collection,
                    locations=list(locations),
                    schedule=schedule,
                    access=list(access),
                    meta=dict(meta or {}),
                    created_at=self._clock(),
                )
            )
            session.commit()
        return source_id

    def sources(self, collection: str | None = None) -> list[SourceRow]:
        """Registered sources (detached rows), of one collection or all."""
        with Session(self._engine, expire_on_commit=False) as session:
            query = select(SourceRow)
            if collection is not None:
                query = query.where(SourceRow.collection == collection)
            rows = list(session.scalars(query))
            session.expunge_all()
            return rows

    def sync(
        self, source_id: str, *, trigger: str = "manual", progress: Progress | None = None
    ) -> IngestReport:
        """Bring a source's documents up to date: add new, re-index changed, remove deleted.

        Unchanged documents (same content hash) are not re-chunked or re-embedded. When a
        location cannot be listed, nothing is deleted and the failure is reported.
        """
        started = self._clock()
        with Session(self._engine) as session:
            source = session.get(SourceRow, source_id)
            if source is None:
                raise NotFoundError(f"sync source {source_id!r} not found")
            collection, locations = source.collection, list(source.locations)
            access, meta = list(source.access), dict(source.meta)
        report = IngestReport()
        seen: set[str] = set()
        listed = True
        try:
            items = list(
                iter_source(
                    locations,
                    LOADERS,
                    allow_public_urls=self.settings.allow_public_urls,
                    timeout_s=self.settings.fetch_timeout_s,
                )
            )
        except SourceListingError as exc:
            items, listed = [], False
            report.failed["(listing)"] = exc.message
        files: list[tuple[str, bytes]] = []
        for item in items:
            seen.add(item.name)
            try:
                files.append((item.name, item.read()))
            except Exception as exc:  # OSError or any HTTP client error: report, keep going
                report.failed[item.name] = f"{item.name}: {exc}"
        part = self.ingest(
            collection, files, access=access, meta=meta, source_id=source_id, progress=progress
        )
        report.added, report.updated, report.unchanged = part.added, part.updated, part.unchanged
        report.failed.update(part.failed)
        report.chunks = part.chunks
        if listed:
            with Session(self._engine) as session:
                gone = [
                    (d.id, d.name)
                    for d in session.scalars(
                        select(DocumentRow).where(DocumentRow.source_id == source_id)
                    )
                    if d.name not in seen
                ]
            if gone:
                self._erase(
                    collection, [i for i, _ in gone], actor="sync", reason=f"source {source_id}"
                )
                report.deleted = [n for _, n in gone]
        finished = self._clock()
        summary = {
            "added": report.added,
            "updated": report.updated,
            "deleted": report.deleted,
            "failed": report.failed,
            "unchanged": len(report.unchanged),
            "chunks": report.chunks,
        }
        with self._lock, Session(self._engine) as session:
            session.add(
                SyncReportRow(
                    source_id=source_id,
                    trigger=trigger,
                    started_at=started,
                    finished_at=finished,
                    report=summary,
                )
            )
            row = session.get(SourceRow, source_id)
            assert row is not None
            row.last_sync_at = started
            session.commit()
        if self._audit is not None:
            self._audit.record(
                "kb.sync", f"kb:{collection}", {"source": source_id, "trigger": trigger, **summary}
            )
        return report

    def sync_reports(self, source_id: str) -> list[dict[str, Any]]:
        """Reports of a source's syncs, oldest first."""
        with Session(self._engine) as session:
            rows = session.scalars(
                select(SyncReportRow)
                .where(SyncReportRow.source_id == source_id)
                .order_by(SyncReportRow.id)
            )
            return [{"trigger": r.trigger, "started_at": r.started_at, **r.report} for r in rows]

    def next_sync_at(self, source: SourceRow) -> datetime | None:
        """When a scheduled source is next due (None: on demand only)."""
        if source.schedule is None:
            return None
        base = source.last_sync_at or source.created_at
        if base.tzinfo is None:
            base = base.replace(tzinfo=UTC)
        nxt: datetime = croniter(source.schedule, base).get_next(datetime)
        return nxt

    def run_due(self, now: datetime | None = None) -> dict[str, IngestReport]:
        """Sync every scheduled source whose next run is at or before ``now``."""
        now = now or self._clock()
        reports = {}
        for source in self.sources():
            due = self.next_sync_at(source)
            if due is not None and due <= now:
                reports[source.id] = self.sync(source.id, trigger="schedule")
        return reports

    # ---- internals -------------------------------------------------------------------

    def _require(self, session: Session, name: str) -> None:
        if session.get(CollectionRow, name) is None:
            raise NotFoundError(f"knowledge base {name!r} not found", param="kb")

    def _bm25_of(self, session: Session, collection: str) -> BM25Index:
        index = self._bm25.get(collection)
        if index is None:
            index = BM25Index(self._segmenter)
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
            index.add(
                (
                    cid,
                    f"{heading}\n{text}" if heading else text,
                    Payload(doc_id, access_tags(acc), meta),
                )
                for cid, heading, text, doc_id, acc, meta in rows
            )
            self._bm25[collection] = index
        return index

    def close(self) -> None:
        """Flush vectors and release the database."""
        with self._lock:
            self._store.flush()
            self._engine.dispose()
