"""What the knowledge service's parts share: the catalog, the write lock, both indexes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from luodi.knowledge.index.bm25 import BM25Index, TermCounts
from luodi.knowledge.index.vector_store import VectorStore

__all__ = ["Stores"]


@dataclass(frozen=True, slots=True)
class Stores:
    """Handles owned by ``KnowledgeService`` and lent to its ingestion, erasure and sync."""

    catalog: Engine
    """The catalog database (collections, documents, chunks, sources)."""
    lock: threading.RLock
    """Catalog and indexes change together under it."""
    vectors: VectorStore
    bm25_of: Callable[[Session, str], BM25Index]
    """The BM25 index of a collection, built from the catalog on first use."""
    originals: Path
    """Folder of kept uploaded files, one per document id."""
    segment: Callable[[str], TermCounts]
    """BM25 terms of a chunk's text, computed before the lock is taken."""
    bm25_file: Callable[[str], Path]
    """Where a collection's BM25 index is saved between runs (erasure removes it)."""
