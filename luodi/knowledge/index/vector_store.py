"""The ``VectorStore`` protocol and the registry that builds the configured store.

``FlatVectorStore`` (``flat_store.py``), the embedded default, keeps one matrix per
collection in memory and on disk and answers with exact inner-product search: no
recall loss and no index build, which is the right trade up to a few hundred
thousand chunks per collection. Beyond that, or for several gateway replicas,
``QdrantVectorStore`` talks to a Qdrant server or cluster through the same protocol
(see docs/knowledge.md). ``VECTOR_STORES`` names each store (``knowledge.vector_store``)
and ``build_vector_store`` builds the configured one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from luodi.config.knowledge import KnowledgeSettings
from luodi.errors import ConfigError
from luodi.knowledge.index.flat_store import FlatVectorStore
from luodi.knowledge.types import Filter, Payload

__all__ = ["VECTOR_STORES", "FlatVectorStore", "VectorStore", "build_vector_store"]


class VectorStore(Protocol):
    """Dense vectors of chunks, grouped in collections, searchable with filters."""

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: NDArray[np.float32],
        payloads: Sequence[Payload],
    ) -> None:
        """Insert or replace vectors (rows of unit norm) with their payloads."""
        ...

    def delete(self, collection: str, ids: Iterable[str]) -> None:
        """Remove vectors by chunk id; unknown ids are ignored."""
        ...

    def search(
        self, collection: str, query: NDArray[np.float32], limit: int, flt: Filter | None = None
    ) -> list[tuple[str, float]]:
        """Best ``limit`` ``(chunk_id, cosine)`` pairs that pass ``flt``."""
        ...

    def count(self, collection: str) -> int:
        """Vectors stored in ``collection``."""
        ...

    def drop(self, collection: str) -> None:
        """Delete a collection and everything in it."""
        ...

    def flush(self) -> None:
        """Make every change durable (deletions included: erased vectors leave the disk)."""
        ...


def _flat(settings: KnowledgeSettings, dim: int) -> VectorStore:
    return FlatVectorStore(settings.data_dir / "vectors", dim)


def _qdrant(settings: KnowledgeSettings, dim: int) -> VectorStore:
    # Imported here: qdrant-client is an optional extra (luodi[qdrant]).
    from luodi.knowledge.index.qdrant_store import QdrantVectorStore

    assert settings.qdrant_url is not None  # the settings validator guarantees it
    key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    return QdrantVectorStore.connect(settings.qdrant_url, dim, api_key=key)


VECTOR_STORES: Mapping[str, Callable[[KnowledgeSettings, int], VectorStore]] = MappingProxyType(
    {"flat": _flat, "qdrant": _qdrant}
)
"""Store name (``knowledge.vector_store``) → constructor, given the vectors' dimension."""


def build_vector_store(
    settings: KnowledgeSettings,
    dim: int,
    registry: Mapping[str, Callable[[KnowledgeSettings, int], VectorStore]] = VECTOR_STORES,
) -> VectorStore:
    """The vector store ``settings.vector_store`` names, for vectors of length ``dim``.

    Args:
        settings: the ``knowledge`` section.
        dim: the embedder's vector length.
        registry: store name → constructor; a test or plugin can pass its own.

    Raises:
        ConfigError: no store has that name.
    """
    factory = registry.get(settings.vector_store)
    if factory is None:
        raise ConfigError(
            f"unknown vector store {settings.vector_store!r}; known: {', '.join(sorted(registry))}"
        )
    return factory(settings, dim)
