"""The ``VectorStore`` protocol and its embedded default, a file-backed flat index.

``FlatVectorStore`` keeps one float32 matrix per collection in memory and on disk
(``<dir>/<collection>.npy`` plus a JSON sidecar of ids and payloads) and answers
with exact inner-product search: no recall loss and no index build, which is the
right trade up to a few hundred thousand chunks per collection. Beyond that, or
for several gateway replicas, ``QdrantVectorStore`` talks to a Qdrant server or
cluster through the same protocol (see docs/knowledge.md). ``VECTOR_STORES`` names
each store (``knowledge.vector_store``) and ``build_vector_store`` builds the configured
one.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from luodi.config.knowledge import KnowledgeSettings
from luodi.errors import ConfigError
from luodi.knowledge.types import Filter, Payload

__all__ = ["VECTOR_STORES", "FlatVectorStore", "VectorStore", "build_vector_store"]

_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


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


class _Matrix:
    def __init__(self, dim: int) -> None:
        self.vectors = np.zeros((0, dim), dtype=np.float32)
        self.ids: list[str] = []
        self.payloads: list[Payload] = []
        self.row: dict[str, int] = {}
        self.size = 0
        self.dirty = False

    def live(self) -> NDArray[np.float32]:
        return self.vectors[: self.size]


class FlatVectorStore:
    """Exact search over float32 matrices persisted in ``directory``.

    Not safe for concurrent writers: the knowledge service serialises writes.

    Args:
        directory: where collections are saved; None keeps everything in memory.
        dim: vector length.
    """

    def __init__(self, directory: Path | None, dim: int) -> None:
        self._dir = directory
        self._dim = dim
        self._collections: dict[str, _Matrix] = {}
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def _path(self, collection: str) -> Path:
        if not _SAFE.match(collection):
            raise ValueError(f"collection name {collection!r} is not a safe file name")
        assert self._dir is not None
        return self._dir / f"{collection}.npy"

    def _get(self, collection: str) -> _Matrix:
        matrix = self._collections.get(collection)
        if matrix is not None:
            return matrix
        matrix = _Matrix(self._dim)
        if self._dir is not None and self._path(collection).is_file():
            path = self._path(collection)
            matrix.vectors = np.load(path)
            meta = json.loads(path.with_suffix(".json").read_text())
            matrix.ids = list(meta["ids"])
            matrix.payloads = [
                Payload(p["doc_id"], frozenset(p["tags"]), p["meta"]) for p in meta["payloads"]
            ]
            matrix.size = len(matrix.ids)
            matrix.row = {cid: i for i, cid in enumerate(matrix.ids)}
        self._collections[collection] = matrix
        return matrix

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: NDArray[np.float32],
        payloads: Sequence[Payload],
    ) -> None:
        m = self._get(collection)
        self.delete(collection, ids)
        need = m.size + len(ids)
        if need > len(m.vectors):
            grown = np.zeros((max(need, 2 * len(m.vectors), 1024), self._dim), dtype=np.float32)
            grown[: m.size] = m.live()
            m.vectors = grown
        m.vectors[m.size : need] = vectors
        for offset, cid in enumerate(ids):
            m.row[cid] = m.size + offset
        m.ids.extend(ids)
        m.payloads.extend(payloads)
        m.size = need
        m.dirty = True

    def delete(self, collection: str, ids: Iterable[str]) -> None:
        m = self._get(collection)
        rows = sorted((m.row[c] for c in set(ids) if c in m.row), reverse=True)
        if not rows:
            return
        keep = np.ones(m.size, dtype=bool)
        keep[rows] = False
        m.vectors = np.ascontiguousarray(m.live()[keep])
        m.ids = [c for c, k in zip(m.ids, keep, strict=True) if k]
        m.payloads = [p for p, k in zip(m.payloads, keep, strict=True) if k]
        m.size = len(m.ids)
        m.row = {cid: i for i, cid in enumerate(m.ids)}
        m.dirty = True

    def search(
        self, collection: str, query: NDArray[np.float32], limit: int, flt: Filter | None = None
    ) -> list[tuple[str, float]]:
        m = self._get(collection)
        if not m.size or limit <= 0:
            return []
        scores = m.live() @ query.astype(np.float32)
        if flt is None:
            k = min(limit, m.size)
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top])]
            return [(m.ids[i], float(scores[i])) for i in top]
        out: list[tuple[str, float]] = []
        for i in np.argsort(-scores):
            if flt.matches(m.payloads[i]):
                out.append((m.ids[i], float(scores[i])))
                if len(out) == limit:
                    break
        return out

    def count(self, collection: str) -> int:
        return self._get(collection).size

    def drop(self, collection: str) -> None:
        self._collections.pop(collection, None)
        if self._dir is not None:
            for path in (self._path(collection), self._path(collection).with_suffix(".json")):
                path.unlink(missing_ok=True)

    def flush(self) -> None:
        if self._dir is None:
            return
        for name, m in self._collections.items():
            if not m.dirty:
                continue
            path = self._path(name)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, m.live())
            meta = {
                "ids": m.ids,
                "payloads": [
                    {"doc_id": p.doc_id, "tags": sorted(p.tags), "meta": dict(p.meta)}
                    for p in m.payloads
                ],
            }
            tmp_meta = path.with_suffix(".tmp.json")
            tmp_meta.write_text(json.dumps(meta, ensure_ascii=False))
            os.replace(tmp, path)
            os.replace(tmp_meta, path.with_suffix(".json"))
            m.dirty = False


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
