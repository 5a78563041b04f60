"""Ingestion: files in, chunks out, written to the catalog and both indexes at once.

Loading, chunking, embedding and BM25 term extraction run outside the service's lock
(the slow part, safe to run concurrently); the catalog rows, vectors and BM25 postings
of a document are then written together under it, so a search never sees half a
document. Embedding runs in batches of ``knowledge.embed_batch`` chunks, and a
``Tracker`` (a background job) hears of each batch: that is where a job yields to
serving and where it can be cancelled.

Documents go through two stages, one document apart: while one is embedded (ONNX
Runtime or llama.cpp, outside the interpreter lock), the next is parsed, chunked and
segmented for BM25 (Python) on a second thread, so the cores the embedder leaves idle
between its batches do that work instead of waiting for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session

from luodi.config.knowledge import KnowledgeSettings
from luodi.embedding import Embedder
from luodi.errors import ServiceUnavailableError
from luodi.knowledge.access import Caller, document_tags, stored_access
from luodi.knowledge.catalog import (
    ChunkRow,
    CollectionRow,
    DocumentRow,
    collection_scope,
    require_collection,
)
from luodi.knowledge.chunking import Chunker
from luodi.knowledge.erasure import Erasure
from luodi.knowledge.index.bm25 import TermCounts
from luodi.knowledge.loaders import LOADERS, DocumentLimitError, DocumentLoadError, ParseLimits
from luodi.knowledge.loaders.isolation import parse_isolated
from luodi.knowledge.reembed import fingerprint
from luodi.knowledge.sources import SourceListingError, iter_source
from luodi.knowledge.stores import Stores
from luodi.knowledge.types import PUBLIC_TAG, Chunk, IngestReport, Payload, Progress, Tracker

__all__ = ["Ingestion"]


@dataclasses.dataclass
class _Prepared:
    """A document parsed, chunked and segmented, ready to embed and write."""

    digest: str
    chunks: list[Chunk]
    inputs: list[str]
    terms: list[TermCounts]


@dataclasses.dataclass
class _Skipped:
    """A document left as it is: ``unchanged``, or ``failed`` with the reason."""

    failed: str | None = None


class Ingestion:
    """The write path of a knowledge service; ``KnowledgeService`` delegates to it.

    The embedder is passed with each call rather than held, so that the service's
    ``embedder`` stays the one place that says which model embeds.

    Args:
        settings: the ``knowledge`` section (``keep_originals``).
        stores: the catalog, write lock, indexes and the folder of kept originals.
        erasure: drops a changed document's old chunks before the new ones are written.
        chunker: splits loaded blocks into passages.
        redact: masks personal data in each loaded block before it is indexed.
        clock: current time, read at each call.
    """

    def __init__(
        self,
        settings: KnowledgeSettings,
        *,
        stores: Stores,
        erasure: Erasure,
        chunker: Chunker,
        redact: Callable[[str], str] | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._stores = stores
        self._erasure = erasure
        self._chunker = chunker
        self._redact = redact
        self._clock = clock

    def ingest(
        self,
        collection: str,
        files: Sequence[tuple[str, bytes]],
        *,
        embedder: Embedder,
        access: Sequence[str],
        meta: Mapping[str, str] | None,
        source_id: str | None,
        progress: Progress | None,
        caller: Caller | None = None,
        owner: str | None = None,
        tracker: Tracker | None = None,
    ) -> IngestReport:
        """Load, chunk, embed and index ``(name, content)`` files.

        Documents are owned by ``caller``'s tenant (trusted callers: ``owner``, else the
        collection's tenant). A file whose name is known *in that scope* is replaced when
        its content, access list or metadata changed and left untouched otherwise; a
        document of that name the caller may not read is not replaced (reported in
        ``failed``). A file that cannot be read is reported by name; the rest is kept. A
        caller's file over a parse limit (a bomb) raises ``DocumentLimitError`` instead.
        """
        report = IngestReport()
        meta = dict(meta or {})
        with Session(self._stores.catalog) as session:
            row = require_collection(session, collection, caller)
            if row.embedder is not None and row.embedder != fingerprint(embedder):
                # Its vectors and the new ones would not be comparable.
                raise ServiceUnavailableError(
                    f"knowledge base {collection!r} was embedded with {row.embedder}, not "
                    f"{fingerprint(embedder)}; re-embed it first: luodi kb reembed {collection}",
                    code="kb_needs_reembed",
                )
            if caller is not None:
                scope = caller.scope
            else:
                scope = collection_scope(row) if owner is None else owner
        stored = stored_access(
            access, caller=caller, collection=collection, default=scope or PUBLIC_TAG
        )
        ahead = ThreadPoolExecutor(1, thread_name_prefix="luodi-ingest-prepare")

        def prepare(index: int) -> Future[_Prepared | _Skipped]:
            name, data = files[index]
            return ahead.submit(self._prepare, collection, name, data, scope, stored, meta, caller)

        try:
            coming = prepare(0) if files else None
            for index, (name, data) in enumerate(files):
                current = coming if coming is not None else prepare(index)
                coming = None
                # The next one is prepared meanwhile, unless it has this one's name: it
                # must see this one written (replace it, or find it unchanged).
                if index + 1 < len(files) and files[index + 1][0] != name:
                    coming = prepare(index + 1)
                try:
                    prepared = current.result()
                    if isinstance(prepared, _Skipped):
                        if prepared.failed is None:
                            report.unchanged.append(name)
                        else:
                            report.failed[name] = prepared.failed
                    else:
                        self._write(
                            collection,
                            name,
                            data,
                            prepared,
                            scope,
                            stored,
                            meta,
                            source_id,
                            embedder,
                            report,
                            tracker,
                        )
                except DocumentLimitError as exc:
                    if caller is not None and tracker is None:
                        raise  # an upload over a parse limit is refused: 400 naming the limit
                    report.failed[name] = exc.message  # a job, a sync or the CLI goes on
                except DocumentLoadError as exc:
                    report.failed[name] = exc.message
                if progress is not None:
                    progress(name)
                if tracker is not None:
                    tracker.document_done(name, report.failed.get(name))
        finally:
            # A cancelled job or a refused upload does not wait for the next parse.
            ahead.shutdown(wait=False, cancel_futures=True)
            # Also when a job is cancelled: what was indexed so far is kept, durably.
            with self._stores.lock:
                self._stores.vectors.flush()
        return report

    def ingest_paths(
        self,
        collection: str,
        paths: Sequence[Path],
        *,
        embedder: Embedder,
        access: Sequence[str],
        meta: Mapping[str, str] | None,
        progress: Progress | None,
        tracker: Tracker | None = None,
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
        report = self.ingest(
            collection,
            files,
            embedder=embedder,
            access=access,
            meta=meta,
            source_id=None,
            progress=progress,
            tracker=tracker,
        )
        report.failed.update(failed)
        return report

    def _prepare(
        self,
        collection: str,
        name: str,
        data: bytes,
        owner: str,
        access: list[str],
        meta: dict[str, str],
        caller: Caller | None,
    ) -> _Prepared | _Skipped:
        """Compare with the stored document of this name; parse, chunk and segment."""
        digest = hashlib.sha256(data).hexdigest()
        with Session(self._stores.catalog) as session:
            existing = session.scalars(
                select(DocumentRow).where(*_same_name(collection, name, owner))
            ).first()
            if (
                existing is not None
                and caller is not None
                and not caller.reads(collection, existing.owner, existing.access)
            ):
                # Compared with nothing: its content must not show through the answer.
                return _Skipped(
                    f"{name}: a document of this name that you may not read exists in "
                    "your tenant; choose another name"
                )
            if existing is not None and (existing.content_hash, existing.access, existing.meta) == (
                digest,
                access,
                meta,
            ):
                return _Skipped()
        # Parse, chunk and segment outside the lock: the slow part runs concurrently.
        blocks = parse_isolated(name, data, ParseLimits.from_settings(self._settings))
        if self._redact is not None:
            blocks = [dataclasses.replace(b, text=self._redact(b.text)) for b in blocks]
        chunks = self._chunker.chunk(blocks)
        if not chunks:
            raise DocumentLoadError(f"{name}: no text found")
        inputs = [f"{c.heading}\n{c.text}" if c.heading else c.text for c in chunks]
        terms = [self._stores.segment(text) for text in inputs]
        return _Prepared(digest, chunks, inputs, terms)

    def _write(
        self,
        collection: str,
        name: str,
        data: bytes,
        prepared: _Prepared,
        owner: str,
        access: list[str],
        meta: dict[str, str],
        source_id: str | None,
        embedder: Embedder,
        report: IngestReport,
        tracker: Tracker | None,
    ) -> None:
        """Embed a prepared document and write it to the catalog and both indexes."""
        chunks, digest, terms = prepared.chunks, prepared.digest, prepared.terms
        if tracker is not None:
            tracker.planned(len(chunks))
        vectors = self._embed(embedder, prepared.inputs, tracker)
        same_name = _same_name(collection, name, owner)
        with self._stores.lock, Session(self._stores.catalog) as session:
            kb = session.get(CollectionRow, collection)
            if kb is not None and kb.embedder is None:
                kb.embedder = fingerprint(embedder)  # what its vectors are comparable with
            row = session.scalars(select(DocumentRow).where(*same_name)).first()
            if row is None:
                row = DocumentRow(
                    id=uuid.uuid4().hex, collection=collection, name=name, owner=owner
                )
                session.add(row)
                report.added.append(name)
            else:
                self._erasure.unindex(session, collection, [row.id])
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
            payload = Payload(row.id, document_tags(owner, access), dict(meta))
            self._stores.vectors.upsert(collection, ids, vectors, [payload] * len(ids))
            self._stores.bm25_of(session, collection).add_counted(
                (cid, counts, payload) for cid, counts in zip(ids, terms, strict=True)
            )
            if self._settings.keep_originals:
                self._stores.originals.mkdir(parents=True, exist_ok=True)
                (self._stores.originals / row.id).write_bytes(data)
            report.chunks += len(chunks)

    def _embed(
        self, embedder: Embedder, inputs: list[str], tracker: Tracker | None
    ) -> NDArray[np.float32]:
        """Vectors of ``inputs``, a batch at a time, telling ``tracker`` after each."""
        step = self._settings.embed_batch
        parts = []
        for lo in range(0, len(inputs), step):
            parts.append(embedder.embed(inputs[lo : lo + step]))
            if tracker is not None:
                tracker.embedded(len(parts[-1]))
        return np.concatenate(parts).astype(np.float32, copy=False)


def _same_name(collection: str, name: str, owner: str) -> tuple[Any, ...]:
    """The catalog condition for the document ``name`` of ``owner`` in ``collection``."""
    return (
        DocumentRow.collection == collection,
        DocumentRow.name == name,
        DocumentRow.owner == owner,
    )
