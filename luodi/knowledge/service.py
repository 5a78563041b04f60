"""``KnowledgeService``: the one object the API, the CLI and the chat route use.

It owns the catalog (SQL), one BM25 index per collection (rebuilt from the catalog
on first use) and the vector store, and keeps them in step: every write changes
all three under one lock, so a search never sees a chunk in one index only. The
write paths live beside it (``ingestion.py``, ``erasure.py``, ``source_sync.py``)
and share that lock; the service's public methods delegate to them.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from luodi.config.knowledge import KnowledgeSettings
from luodi.embedding import Embedder
from luodi.errors import (
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from luodi.knowledge.access import Caller, as_caller, document_tags, stored_access
from luodi.knowledge.catalog import (
    ChunkRow,
    CollectionRow,
    DocumentRow,
    SourceRow,
    chunk_entries,
    chunk_hits,
    chunk_payloads,
    collection_names,
    collection_scope,
    open_catalog,
    require_collection,
    sees_collection,
)
from luodi.knowledge.chunking import Chunker
from luodi.knowledge.erasure import Erasure
from luodi.knowledge.grounding import citations_of, inject_context, last_user_text
from luodi.knowledge.index.bm25 import BM25Index, Segmenter
from luodi.knowledge.index.vector_store import VectorStore, build_vector_store
from luodi.knowledge.ingestion import Ingestion
from luodi.knowledge.jobs import JobRunner, JobStatus
from luodi.knowledge.loaders.isolation import start_parser
from luodi.knowledge.reembed import fingerprint, reembed
from luodi.knowledge.retrieval import HybridRetriever, Reranker, rerank
from luodi.knowledge.source_sync import SourceSync
from luodi.knowledge.stores import Stores
from luodi.knowledge.types import (
    PUBLIC_TAG,
    AuditSink,
    Citation,
    CollectionInfo,
    DocumentInfo,
    Filter,
    Hit,
    IngestReport,
    Payload,
    Principal,
    Progress,
    Tracker,
)

__all__ = ["AuditSink", "CollectionInfo", "DocumentInfo", "KnowledgeService", "Progress"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _caller(principal: Principal | Caller | None) -> Caller | None:
    return None if principal is None else as_caller(principal)


def readable(caller: Caller | None, collection: str, row: DocumentRow) -> bool:
    """Whether ``caller`` (None: trusted) may read a document of ``collection``."""
    return caller is None or caller.reads(collection, row.owner, row.access)


def writable(caller: Caller | None, collection: str, row: DocumentRow) -> bool:
    """Whether ``caller`` may replace or delete it: it reads it and its tenant owns it."""
    return caller is None or caller.writes(collection, row.owner, row.access)


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
        store: vector store; None: the one ``knowledge.vector_store`` names.
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
        serving_busy: Callable[[], bool] | None = None,
    ) -> None:
        """``redact`` masks personal data in each loaded block before it is indexed;
        background jobs wait while ``serving_busy()`` (``knowledge.ingest_yield_max_s``)."""
        self.settings = settings
        self.embedder = embedder
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._engine = open_catalog(settings.catalog_url())
        self._store = store or build_vector_store(settings, embedder.dim)
        self._reranker = reranker
        self._clock = clock
        self._chunker = Chunker(
            embedder.count_tokens, settings.chunk_tokens, settings.chunk_overlap
        )
        self._retriever = HybridRetriever(settings.candidates, settings.rrf_k)
        self._segmenter = Segmenter()
        self._bm25: dict[str, BM25Index] = {}
        self._lock = threading.RLock()
        self._originals = settings.data_dir / "originals"
        stores = Stores(
            catalog=self._engine,
            lock=self._lock,
            vectors=self._store,
            bm25_of=self._bm25_of,
            originals=self._originals,
            segment=self._segmenter.counts,
            bm25_file=self._bm25_file,
        )
        self._stores = stores
        self._jobs = JobRunner(
            self._engine,
            nice=settings.ingest_nice,
            pause_s=settings.ingest_pause_ms / 1000,
            clock=self._now,
            busy=serving_busy,
            yield_max_s=settings.ingest_yield_max_s,
        )
        self._erasure = Erasure(stores, audit=audit)
        self._ingestion = Ingestion(
            settings,
            stores=stores,
            erasure=self._erasure,
            chunker=self._chunker,
            redact=redact,
            clock=self._now,
        )
        self._sync = SourceSync(
            settings,
            stores=stores,
            ingest=self.ingest,
            erasure=self._erasure,
            audit=audit,
            clock=self._now,
        )

    def warm(self) -> None:
        """Load jieba's dictionary and start the parser's fork server (about a second).

        Otherwise the first upload or query after a start waits for them. The server
        calls this as it starts, before it serves.
        """
        try:
            self._segmenter.warm()
            start_parser()
        except Exception:  # a warm-up that fails leaves the work to the first upload
            log.warning("knowledge warm-up failed", exc_info=True)

    # ---- collections -------------------------------------------------------------

    def create_collection(
        self,
        name: str,
        owner: str = "",
        description: str = "",
        *,
        caller: Principal | Caller | None = None,
        shared: bool = False,
    ) -> CollectionInfo:
        """Create an empty knowledge base.

        Args:
            owner: trusted callers (the CLI): the owning tenant; "" leaves it to managers.
            caller: who creates it; the collection belongs to its tenant.
            shared: seen by every tenant's readers; needs ``kb:<name>:publish``.

        Raises:
            InvalidRequestError: the name is not 1-64 of ``A-Za-z0-9_.-`` or already exists.
            PermissionDeniedError: ``shared`` without ``kb:<name>:publish``.
        """
        if not _NAME.match(name):
            raise InvalidRequestError(
                f"knowledge base name {name!r} must be 1-64 characters of A-Z a-z 0-9 _ . -",
                param="name",
            )
        who = _caller(caller)
        if who is not None:
            tenant: str | None = who.scope.removeprefix("tenant:")
            if shared and not who.publishes(name):
                raise PermissionDeniedError(
                    f"sharing {name!r} needs permission 'kb:{name}:publish'"
                )
            creator = who.user
        else:
            tenant, creator = owner or None, owner
        with self._lock, Session(self._engine) as session:
            if session.get(CollectionRow, name) is not None:
                raise InvalidRequestError(f"knowledge base {name!r} already exists", param="name")
            session.add(
                CollectionRow(
                    name=name, owner=creator, description=description, tenant=tenant, shared=shared
                )
            )
            session.commit()
        return CollectionInfo(name, creator, description, 0, 0, tenant, shared)

    def list_collections(self, principal: Principal | Caller | None = None) -> list[CollectionInfo]:
        """Knowledge bases ``principal`` sees (all for None), counting only what it may read."""
        caller = _caller(principal)
        with Session(self._engine) as session:
            out = []
            for name in collection_names(session):
                row = session.get(CollectionRow, name)
                assert row is not None
                if caller is not None and not sees_collection(caller, row):
                    continue
                docs = [
                    d
                    for d in session.scalars(
                        select(DocumentRow).where(DocumentRow.collection == name)
                    )
                    if readable(caller, name, d)
                ]
                out.append(
                    CollectionInfo(
                        name,
                        row.owner,
                        row.description,
                        len(docs),
                        sum(d.n_chunks for d in docs),
                        row.tenant,
                        row.shared,
                    )
                )
            return out

    def update_collection(
        self,
        name: str,
        *,
        caller: Principal | Caller | None,
        tenant: str | None = None,
        shared: bool | None = None,
    ) -> CollectionInfo:
        """Give a collection a tenant, or share or unshare it.

        Giving a tenant needs ``kb:<name>:manage``; documents indexed before tenancy
        (owner "") then belong to that tenant. Sharing or unsharing needs
        ``kb:<name>:publish`` in the owning tenant (or ``kb:<name>:manage``).

        Raises:
            NotFoundError: no such collection, or one the caller does not see.
            PermissionDeniedError: the permission above is missing.
        """
        who = _caller(caller)
        with self._lock, Session(self._engine) as session:
            row = require_collection(session, name, who)
            if tenant is not None:
                if who is not None and not who.manages(name):
                    raise PermissionDeniedError(
                        f"giving {name!r} a tenant needs permission 'kb:{name}:manage'"
                    )
                row.tenant = tenant
                self._adopt(session, name, f"tenant:{tenant}")
            if shared is not None:
                owns = who is None or who.manages(name) or row.tenant == who.tenant
                if who is not None and not (who.publishes(name) and owns):
                    raise PermissionDeniedError(
                        f"sharing {name!r} needs permission 'kb:{name}:publish' "
                        "in the tenant that owns it"
                    )
                row.shared = shared
            session.commit()
            info = CollectionInfo(name, row.owner, row.description, 0, 0, row.tenant, row.shared)
        visible = [c for c in self.list_collections(caller) if c.name == name]
        return visible[0] if visible else info

    def _adopt(self, session: Session, collection: str, owner: str) -> None:
        """Give documents indexed before tenancy (owner "") to ``owner``, keeping the
        indexes in step: a ``role:`` tag is narrowed to the owner's tenant, so those
        documents' chunks are re-indexed with their new tags (text from the catalog)."""
        for doc in session.scalars(
            select(DocumentRow).where(DocumentRow.collection == collection, DocumentRow.owner == "")
        ):
            doc.owner = owner
            if document_tags("", doc.access) != document_tags(owner, doc.access):
                self._retag(session, collection, doc)
        session.flush()
        self._store.flush()
        self._bm25.pop(collection, None)  # rebuilt from the catalog with the new tags

    def _retag(self, session: Session, collection: str, doc: DocumentRow) -> None:
        """Re-index a document's chunks with the tags of its current owner and access
        list (text from the catalog; the vector store keeps no vectors to reuse)."""
        chunks = list(
            session.scalars(
                select(ChunkRow).where(ChunkRow.document_id == doc.id).order_by(ChunkRow.position)
            )
        )
        if not chunks:
            return
        texts = [f"{c.heading}\n{c.text}" if c.heading else c.text for c in chunks]
        payload = Payload(doc.id, document_tags(doc.owner, doc.access), dict(doc.meta))
        self._store.upsert(
            collection, [c.id for c in chunks], self.embedder.embed(texts), [payload] * len(chunks)
        )

    def drop_collection(self, name: str) -> None:
        """Delete a knowledge base with all its documents, chunks, vectors and sources."""
        with self._lock, Session(self._engine) as session:
            require_collection(session, name)
            for doc in session.scalars(select(DocumentRow).where(DocumentRow.collection == name)):
                self._erasure.forget_original(doc.id)
            session.execute(delete(ChunkRow).where(ChunkRow.collection == name))
            session.execute(delete(DocumentRow).where(DocumentRow.collection == name))
            session.execute(delete(SourceRow).where(SourceRow.collection == name))
            session.execute(delete(CollectionRow).where(CollectionRow.name == name))
            session.commit()
            self._store.drop(name)
            self._bm25.pop(name, None)
            self._erasure.forget_bm25_file(name)

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
        caller: Principal | Caller | None = None,
        owner: str | None = None,
        tracker: Tracker | None = None,
    ) -> IngestReport:
        """Load, chunk, embed and index ``(name, content)`` files.

        A file with a known name in the same owner scope is replaced when its content,
        access list or metadata changed and left untouched otherwise. A file that cannot
        be read is reported in ``failed`` by name; the rest of the batch is kept.

        Args:
            caller: who uploads; its tenant owns the documents and its ACL applies
                (see ``access.py``). None: trusted (the CLI, a sync run).
            owner: trusted callers only: the owner scope (default: the collection's).
        """
        return self._ingestion.ingest(
            collection,
            files,
            embedder=self.embedder,
            access=access,
            meta=meta,
            source_id=source_id,
            progress=progress,
            caller=_caller(caller),
            owner=owner,
            tracker=tracker,
        )

    def ingest_paths(
        self,
        collection: str,
        paths: Sequence[Path],
        *,
        access: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        tracker: Tracker | None = None,
    ) -> IngestReport:
        """Ingest files and folders (walked for known suffixes); unreadable paths are reported."""
        return self._ingestion.ingest_paths(
            collection,
            paths,
            embedder=self.embedder,
            access=access,
            meta=meta,
            progress=progress,
            tracker=tracker,
        )

    # ---- search and grounding ----------------------------------------------------

    def search(
        self,
        collections: Sequence[str],
        query: str,
        top_k: int | None = None,
        *,
        principal: Principal | Caller | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> list[Hit]:
        """Best passages for ``query`` across ``collections``.

        Args:
            principal: whose ACL applies (collections it cannot see are NotFoundError,
                documents it may not read are not found); None (trusted callers such
                as the CLI) skips it. Permission to read each collection is the
                caller's check (``kb:<name>:read``).
            meta: document metadata that every hit must match exactly.

        Raises:
            NotFoundError: an unknown collection.
        """
        k = top_k or self.settings.top_k
        caller = _caller(principal)
        with Session(self._engine) as session:
            for name in collections:
                self._require_embedder(require_collection(session, name, caller))
        if not query.strip():
            return []
        query_vector = self.embedder.embed([query])[0]
        fused: list[tuple[str, str, float]] = []
        with self._lock, Session(self._engine) as session:
            for name in collections:
                require_collection(session, name, caller)
                tags = None if caller is None or caller.manages(name) else caller.read_tags()
                flt = Filter(tags, dict(meta or {}))
                bm25 = self._bm25_of(session, name)
                for cid, score in self._retriever.search(
                    name, query, query_vector, bm25, self._store, flt
                ):
                    fused.append((name, cid, score))
            fused.sort(key=lambda t: t[2], reverse=True)
            fused = fused[: max(k, self.settings.candidates if self._reranker else k)]
            hits = chunk_hits(session, fused)
        if self._reranker is not None and hits:
            hits = rerank(self._reranker, query, hits)
        return hits[:k]

    async def ground(
        self,
        messages: Sequence[Mapping[str, Any]],
        kb_names: Sequence[str],
        top_k: int | None,
        principal: Principal | Caller | None,
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
        self, collection: str, principal: Principal | Caller | None = None
    ) -> list[DocumentInfo]:
        """Documents of a collection that ``principal`` may see (all for None)."""
        caller = _caller(principal)
        with Session(self._engine) as session:
            require_collection(session, collection, caller)
            rows = session.scalars(
                select(DocumentRow)
                .where(DocumentRow.collection == collection)
                .order_by(DocumentRow.name, DocumentRow.owner)
            ).all()
            return [_doc_info(r) for r in rows if readable(caller, collection, r)]

    def get_document(
        self, collection: str, doc_id: str, principal: Principal | Caller | None = None
    ) -> DocumentInfo:
        """One document; NotFoundError also when ``principal`` may not see it."""
        caller = _caller(principal)
        with Session(self._engine) as session:
            require_collection(session, collection, caller)
            row = session.get(DocumentRow, doc_id)
            if (
                row is not None
                and row.collection == collection
                and readable(caller, collection, row)
            ):
                return _doc_info(row)
        raise NotFoundError(f"document {doc_id!r} not found in knowledge base {collection!r}")

    def original(
        self, collection: str, doc_id: str, principal: Principal | Caller | None = None
    ) -> tuple[str, bytes]:
        """The uploaded file ``(name, bytes)``; ``kb:<name>:download`` is the caller's check."""
        info = self.get_document(collection, doc_id, principal)
        path = self._originals / info.id
        if not path.is_file():
            raise NotFoundError(f"the original file of document {doc_id!r} is not kept")
        return info.name, path.read_bytes()

    def delete_document(
        self,
        collection: str,
        doc_id: str,
        *,
        actor: str = "",
        caller: Principal | Caller | None = None,
    ) -> None:
        """Remove a document with every chunk, vector and kept original.

        Raises:
            NotFoundError: no such document, or one ``caller`` may not change (the same
                answer as for a document it cannot see).
        """
        who = _caller(caller)
        with Session(self._engine) as session:
            require_collection(session, collection, who)
            row = session.get(DocumentRow, doc_id)
            if row is None or row.collection != collection or not writable(who, collection, row):
                raise NotFoundError(
                    f"document {doc_id!r} not found in knowledge base {collection!r}"
                )
        self._erasure.delete(collection, [doc_id], actor=actor, reason=f"document {doc_id}")

    def set_access(
        self,
        collection: str,
        doc_id: str,
        access: Sequence[str],
        *,
        caller: Principal | Caller | None = None,
    ) -> DocumentInfo:
        """Replace a document's access list and re-index its chunks with the new tags.

        The rules are an upload's: the caller must be able to change the document (as
        for a delete), and ``public`` (``*``) or another tenant needs
        ``kb:<name>:publish``; an empty list gives the document to its owner's scope.

        Raises:
            NotFoundError: no such document, or one ``caller`` may not change.
            InvalidRequestError: a malformed tag.
            PermissionDeniedError: a tag reaching beyond the caller's tenant without publish.
        """
        who = _caller(caller)
        with self._lock, Session(self._engine) as session:
            require_collection(session, collection, who)
            row = session.get(DocumentRow, doc_id)
            if row is None or row.collection != collection or not writable(who, collection, row):
                raise NotFoundError(
                    f"document {doc_id!r} not found in knowledge base {collection!r}"
                )
            row.access = stored_access(
                access, caller=who, collection=collection, default=row.owner or PUBLIC_TAG
            )
            self._retag(session, collection, row)
            session.commit()
            self._store.flush()
            self._bm25.pop(collection, None)  # rebuilt from the catalog with the new tags
            return _doc_info(row)

    def erase(
        self,
        key: str,
        value: str,
        *,
        collections: Sequence[str] | None = None,
        actor: str = "",
        caller: Principal | Caller | None = None,
    ) -> int:
        """Right to erasure: delete every document whose metadata ``key`` equals ``value``.

        Only documents ``caller`` may change are touched (None: all). Returns the number
        of documents removed, across ``collections`` (None: all).
        """
        who = _caller(caller)
        if who is not None:
            if collections is None:
                raise InvalidRequestError("an erasure by a caller names its collections")
            with Session(self._engine) as session:
                for name in collections:
                    require_collection(session, name, who)
        return self._erasure.erase_where(
            key,
            value,
            collections=collections,
            actor=actor,
            allow=lambda name, row: writable(who, name, row),
        )

    # ---- background jobs --------------------------------------------------------------

    def submit_ingest(
        self,
        collection: str,
        files: Sequence[tuple[str, bytes]],
        *,
        access: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        caller: Principal | Caller | None = None,
        owner: str | None = None,
    ) -> JobStatus:
        """``ingest`` as a background job (lower OS priority, progress, cancellable).

        What would fail the whole upload at once (an unknown collection, an access tag
        the caller may not give) raises here; a file that fails is listed in the job.
        """
        who = _caller(caller)
        with Session(self._engine) as session:
            row = require_collection(session, collection, who)
            scope = who.scope if who is not None else collection_scope(row)
        stored_access(access, caller=who, collection=collection, default=scope or PUBLIC_TAG)
        files = list(files)
        return self._jobs.submit(
            "ingest",
            collection,
            "" if who is None else who.scope,
            len(files),
            lambda job: self._ingestion.ingest(
                collection,
                files,
                embedder=self.embedder,
                access=access,
                meta=meta,
                source_id=None,
                progress=None,
                caller=who,
                owner=owner,
                tracker=job,
            ),
        )

    def submit_sync(self, source_id: str, *, trigger: str = "manual") -> JobStatus:
        """``sync`` as a background job."""
        source = next((s for s in self._sync.sources() if s.id == source_id), None)
        if source is None:
            raise NotFoundError(f"sync source {source_id!r} not found")
        return self._jobs.submit(
            "sync",
            source.collection,
            source.owner,
            0,
            lambda job: self._sync.sync(source_id, trigger=trigger, tracker=job),
        )

    def submit_reembed(self, collection: str) -> JobStatus:
        """Re-embed every chunk of ``collection`` with the current model, in the background.

        Trusted callers only (operators): it touches every tenant's documents.
        """
        with Session(self._engine) as session:
            require_collection(session, collection)
        return self._jobs.submit(
            "reembed",
            collection,
            "",
            0,
            lambda job: reembed(
                self._stores, collection, self.embedder, self.settings.embed_batch, job
            ),
        )

    def job(
        self, collection: str, job_id: str, principal: Principal | Caller | None = None
    ) -> JobStatus:
        """A job of ``collection`` that ``principal`` started (any, if it manages it).

        Raises:
            NotFoundError: no such job there, or one of another tenant.
        """
        status = self._jobs.status(job_id)
        if (
            status is None
            or status.collection != collection
            or not self._sees_job(status, _caller(principal))
        ):
            raise NotFoundError(f"job {job_id!r} not found in knowledge base {collection!r}")
        return status

    def jobs(self, collection: str, principal: Principal | Caller | None = None) -> list[JobStatus]:
        """Jobs of ``collection`` that ``principal`` may see, newest first."""
        caller = _caller(principal)
        with Session(self._engine) as session:
            require_collection(session, collection, caller)
        return [j for j in self._jobs.list(collection) if self._sees_job(j, caller)]

    def cancel_job(
        self, collection: str, job_id: str, principal: Principal | Caller | None = None
    ) -> JobStatus:
        """Stop a job at its next batch; documents it finished stay indexed."""
        self.job(collection, job_id, principal)
        self._jobs.cancel(job_id)
        return self.job(collection, job_id, principal)

    def wait_job(self, job_id: str, timeout: float | None = None) -> JobStatus | None:
        """Block until a job of this process finishes (the CLI, tests)."""
        return self._jobs.wait(job_id, timeout)

    @staticmethod
    def _sees_job(status: JobStatus, caller: Caller | None) -> bool:
        return (
            caller is None
            or caller.manages(status.collection)
            or (caller.tenant is not None and status.owner == caller.scope)
        )

    # ---- sources and sync ------------------------------------------------------------

    def add_source(
        self,
        collection: str,
        locations: Sequence[str],
        *,
        schedule: str | None = None,
        access: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        owner: str | None = None,
    ) -> str:
        """Register folders, files or local-network URLs to sync; returns the source id.

        Sources are registered by operators (the CLI); what a source syncs is owned by
        ``owner`` (default: the collection's tenant scope).

        Raises:
            InvalidRequestError: ``schedule`` is not a valid cron expression.
        """
        return self._sync.add_source(
            collection, locations, schedule=schedule, access=access, meta=meta, owner=owner
        )

    def sources(
        self, collection: str | None = None, principal: Principal | Caller | None = None
    ) -> list[SourceRow]:
        """Registered sources (detached rows), of one collection or all.

        With a ``principal``: only sources of its scope, or all of a collection it manages;
        NotFoundError for a collection it does not see.
        """
        caller = _caller(principal)
        if caller is not None and collection is not None:
            with Session(self._engine) as session:
                require_collection(session, collection, caller)
        return [
            s
            for s in self._sync.sources(collection)
            if caller is None
            or caller.manages(s.collection)
            or (caller.tenant is not None and s.owner == f"tenant:{caller.tenant}")
        ]

    def sync(
        self, source_id: str, *, trigger: str = "manual", progress: Progress | None = None
    ) -> IngestReport:
        """Bring a source's documents up to date: add new, re-index changed, remove deleted.

        Unchanged documents (same content hash) are not re-chunked or re-embedded. When a
        location cannot be listed, nothing is deleted and the failure is reported.
        """
        return self._sync.sync(source_id, trigger=trigger, progress=progress)

    def sync_reports(self, source_id: str) -> list[dict[str, Any]]:
        """Reports of a source's syncs, oldest first."""
        return self._sync.sync_reports(source_id)

    def next_sync_at(self, source: SourceRow) -> datetime | None:
        """When a scheduled source is next due (None: on demand only)."""
        return self._sync.next_sync_at(source)

    def run_due(self, now: datetime | None = None) -> dict[str, IngestReport]:
        """Sync every scheduled source whose next run is at or before ``now``.

        Each runs as a background job (lower OS priority, progress in ``kb_jobs``), one
        after another; this waits for them, so the scheduler never starts one twice.
        """
        now = now or self._now()
        reports = {}
        for source in self._sync.sources():
            due = self._sync.next_sync_at(source)
            if due is None or due > now:
                continue
            job = self.submit_sync(source.id, trigger="schedule")
            done = self._jobs.wait(job.id)
            if done is not None and done.report is not None:
                reports[source.id] = IngestReport(**done.report)
        return reports

    # ---- internals -------------------------------------------------------------------

    def _now(self) -> datetime:
        # Collaborators read the clock through here, so replacing ``_clock`` reaches them.
        return self._clock()

    def _bm25_file(self, collection: str) -> Path:
        return self.settings.data_dir / "bm25" / f"{collection}.npz"

    def _bm25_of(self, session: Session, collection: str) -> BM25Index:
        """The collection's BM25 index: in memory, else as saved if it still describes the
        catalog (same chunks, tags and metadata), else rebuilt from the catalog and saved."""
        index = self._bm25.get(collection)
        if index is None:
            path = self._bm25_file(collection)
            index = BM25Index.load(self._segmenter, path)
            if index is None or not index.describes(chunk_payloads(session, collection)):
                index = BM25Index(self._segmenter)
                index.add(chunk_entries(session, collection))
                index.save(path)
            self._bm25[collection] = index
        return index

    def _require_embedder(self, row: CollectionRow) -> None:
        """Refuse to search vectors another model made: they would rank noise."""
        if row.embedder is not None and row.embedder != fingerprint(self.embedder):
            raise ServiceUnavailableError(
                f"knowledge base {row.name!r} was embedded with {row.embedder} and the "
                f"embedding model is now {fingerprint(self.embedder)}; re-embed it: "
                f"luodi kb reembed {row.name}",
                code="kb_needs_reembed",
            )

    def close(self) -> None:
        """Stop background jobs, flush vectors, save BM25 indexes, release the database."""
        self._jobs.close()
        with self._lock:
            for name, index in self._bm25.items():
                index.save(self._bm25_file(name))
            self._store.flush()
            self._engine.dispose()
