"""Embed once, measure many times: the real embedder's vectors of corpus texts, kept on disk.

``CachedEmbedder`` wraps the configured embedder: a text it has embedded before (same
model name and dimension, same text) comes from ``VectorCache``; anything else is
embedded by the model and added. Every vector in the cache was computed by the real
model; the cache only spares recomputing 100k of them for each latency run. Query
texts are never looked up (``embed_query`` always runs the model and is timed).

``reuse=True`` is the fallback for a latency run on a machine where the corpus could
not be embedded in time: a text missing from the cache then gets the real vector of
another corpus text (cycling through the cache) instead of being embedded. The flat
scan's cost does not depend on the values, and the counts (``hits``, ``reused``) are
reported, so the figure says how many vectors were a chunk's own.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from luodi.embedding import Embedder

__all__ = ["CachedEmbedder", "VectorCache"]

_SHARD_ROWS = 4096


def _digest(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


class VectorCache:
    """Vectors by SHA-1 of their text, in ``.npz`` shards under ``folder``."""

    def __init__(self, folder: Path, dim: int) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._rows: dict[bytes, NDArray[np.float32]] = {}
        self._pending: dict[bytes, NDArray[np.float32]] = {}
        self._pool: list[NDArray[np.float32]] | None = None
        for shard in sorted(folder.glob("*.npz")):
            with np.load(shard) as data:
                for key, vector in zip(data["keys"], data["vectors"], strict=True):
                    if len(vector) == dim:
                        self._rows[bytes(key)] = vector

    def __len__(self) -> int:
        return len(self._rows) + len(self._pending)

    def get(self, digest: bytes) -> NDArray[np.float32] | None:
        found = self._rows.get(digest)
        return found if found is not None else self._pending.get(digest)

    def put(self, digests: Sequence[bytes], vectors: NDArray[np.float32]) -> None:
        for digest, vector in zip(digests, vectors, strict=True):
            self._pending[digest] = vector
        if len(self._pending) >= _SHARD_ROWS:
            self.save()

    def vectors(self) -> list[NDArray[np.float32]]:
        """Every cached vector (computed once, then kept)."""
        if self._pool is None or len(self._pool) != len(self._rows):
            self._pool = list(self._rows.values())
        return self._pool

    def save(self) -> None:
        """Write the vectors added since the last save as a new shard."""
        if not self._pending:
            return
        keys = np.array(list(self._pending), dtype="S20")
        vectors = np.stack(list(self._pending.values())).astype(np.float32)
        shard = self.folder / f"{time.time_ns()}.npz"
        tmp = shard.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, vectors=vectors)
        tmp.rename(shard)
        self._rows.update(self._pending)
        self._pending = {}


class CachedEmbedder:
    """The real embedder, remembering the vectors of texts it has embedded (on disk)."""

    def __init__(self, model: Embedder, cache: VectorCache, *, reuse: bool = False) -> None:
        self.model = model
        self.cache = cache
        self.reuse = reuse
        self.hits = 0
        self.misses = 0
        self.reused = 0
        self.query_ms: list[float] = []

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def dim(self) -> int:
        return self.model.dim

    @property
    def max_tokens(self) -> int:
        return self.model.max_tokens

    def tokenize(self, text: str) -> list[int]:
        return self.model.tokenize(text)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.model.count_tokens(texts)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if len(texts) == 1 and self.query_mode:
            return self.embed_query(texts[0])
        digests = [_digest(t) for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        missing = []
        for i, digest in enumerate(digests):
            vector = self.cache.get(digest)
            if vector is None:
                missing.append(i)
            else:
                out[i] = vector
        self.hits += len(texts) - len(missing)
        if missing and self.reuse and len(self.cache):
            pool = self.cache.vectors()
            for i in missing:
                out[i] = pool[self.reused % len(pool)]
                self.reused += 1
            return out
        self.misses += len(missing)
        if missing:
            fresh = self.model.embed([texts[i] for i in missing])
            out[missing] = fresh
            self.cache.put([digests[i] for i in missing], fresh)
        return out

    query_mode = False
    """While True, one-text calls (the service embedding a query) run the model, timed."""

    def embed_query(self, text: str) -> NDArray[np.float32]:
        start = time.perf_counter()
        vector = self.model.embed([text])
        self.query_ms.append((time.perf_counter() - start) * 1000)
        return vector
