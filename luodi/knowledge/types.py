"""Plain value types shared by the knowledge-base modules."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "PUBLIC_TAG",
    "AuditSink",
    "Block",
    "BlockKind",
    "Chunk",
    "Citation",
    "CollectionInfo",
    "DocumentInfo",
    "Filter",
    "Hit",
    "IngestReport",
    "Payload",
    "Principal",
    "Progress",
    "Tracker",
]

BlockKind = Literal["heading", "text", "list", "table", "row"]

PUBLIC_TAG = "*"
"""Access tag of a public document: every reader of its collection sees it (``access.py``)."""


@dataclass(frozen=True, slots=True)
class Block:
    """One structural unit of a loaded document, in reading order.

    ``heading`` blocks carry their ``level``; ``list`` and ``table`` blocks are kept
    whole by the chunker when they fit; each ``row`` (CSV/XLSX) becomes its own chunk.
    """

    kind: BlockKind
    text: str
    level: int = 0


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrievable passage of a document, with its position metadata."""

    position: int
    text: str
    heading: str = ""
    n_tokens: int = 0


@runtime_checkable
class Principal(Protocol):
    """Who is asking: the security layer's principal, or anything with these fields."""

    @property
    def tenant(self) -> str | None: ...

    @property
    def roles(self) -> Sequence[str]: ...


class AuditSink(Protocol):
    """Where erasures and syncs are recorded (the security layer's audit log)."""

    def record(self, action: str, resource: str, detail: Mapping[str, Any]) -> None: ...


Progress = Callable[[str], None]
"""Called with a document's name after it is processed (drives the CLI's progress bar)."""


class Tracker(Protocol):
    """Follows an ingest chunk by chunk: a background job (``jobs.Job``) is one.

    ``embedded`` is called after each batch of ``knowledge.embed_batch`` chunks and is
    where a job yields to serving; it may raise to stop the ingest there (the document
    being embedded is then not indexed at all).
    """

    def files_found(self, count: int) -> None:
        """``count`` more files to process (a sync learns them when it lists a source)."""
        ...

    def planned(self, chunks: int) -> None:
        """A document was chunked: ``chunks`` more to embed."""
        ...

    def embedded(self, chunks: int) -> None:
        """``chunks`` more were embedded."""
        ...

    def document_done(self, name: str, error: str | None) -> None:
        """A file was indexed or found unchanged (``error`` None), or failed."""
        ...


@dataclass(frozen=True, slots=True)
class Payload:
    """What every index stores beside a chunk, so that filters run inside the index."""

    doc_id: str
    tags: frozenset[str]
    meta: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Filter:
    """A retrieval filter: readable tags (None: no access check) and metadata equalities."""

    tags: frozenset[str] | None = None
    meta: Mapping[str, str] = field(default_factory=dict)

    def matches(self, payload: Payload) -> bool:
        """Whether a chunk with ``payload`` passes this filter."""
        if self.tags is not None and not (payload.tags & self.tags):
            return False
        return all(payload.meta.get(k) == v for k, v in self.meta.items())


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved chunk with its fused score."""

    chunk_id: str
    doc_id: str
    document: str
    position: int
    text: str
    score: float
    heading: str = ""
    collection: str = ""


@dataclass(frozen=True, slots=True)
class Citation:
    """A numbered source of a grounded answer, as returned to the client."""

    index: int
    collection: str
    document_id: str
    document: str
    chunk_id: str
    score: float
    snippet: str


@dataclass(slots=True)
class IngestReport:
    """Outcome of an ingest or a sync: document names per outcome."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    chunks: int = 0


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    """A knowledge base as listed to clients."""

    name: str
    owner: str
    description: str
    documents: int
    chunks: int
    tenant: str | None = None
    shared: bool = False


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
