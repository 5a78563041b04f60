"""``FlatVectorStore``: the embedded default vector store, exact search without an index build.

Each collection keeps its float32 matrix (the truth: persisted, and what scores are
computed from) and a half-precision copy in a faiss ``IndexScalarQuantizer`` that is
scanned with SIMD kernels: half the memory traffic of float32, which is what a
single-query scan is bound by. The scan keeps the best ``limit + 32`` rows; those are
re-scored exactly in float32, so results are the exact inner-product ranking (the
half-precision error, about 1e-3 of a cosine, cannot move a row across 32 places
but for ties). At 100k 384-d chunks a scan takes about 4 ms on one core where a
numpy ``matrix @ query`` took 15.

Writes append rows; a deleted row is masked at once (its vector zeroed in both
copies) and the rows are compacted when a quarter is dead and at every ``flush``,
which rewrites ``<collection>.npy`` and its JSON sidecar with the live rows only, so
an erased vector leaves the disk. Filters run inside the scan: a bitmap of the rows
whose payload passes (``PayloadTable``) is handed to faiss as an ``IDSelector``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from luodi.errors import ServiceUnavailableError
from luodi.knowledge.index.payload_table import PayloadTable
from luodi.knowledge.types import Filter, Payload

__all__ = ["FlatVectorStore"]

_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")
# Rows scanned beyond ``limit`` and then re-scored exactly in float32.
_RESCORE_MARGIN = 32
_COMPACT_SHARE = 0.25
_FORMAT = 2


class _Collection:
    """One collection's rows: vectors, their half-precision scan index, ids and payloads."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.vectors = np.zeros((0, dim), dtype=np.float32)
        self.scan = faiss.IndexScalarQuantizer(
            dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        self.size = 0
        self.dead = 0
        self.ids: list[str | None] = []
        self.doc_ids: list[str] = []
        self.row: dict[str, int] = {}
        self.alive = np.zeros(0, dtype=bool)
        self.payload_of = np.zeros(0, dtype=np.int32)
        self.payloads = PayloadTable()
        self.dirty = False

    @property
    def live(self) -> int:
        return self.size - self.dead

    def append(
        self, ids: Sequence[str], vectors: NDArray[np.float32], payloads: Sequence[Payload]
    ) -> None:
        need = self.size + len(ids)
        if need > len(self.vectors):
            capacity = max(need, 2 * len(self.vectors), 1024)
            grown = np.zeros((capacity, self.dim), dtype=np.float32)
            grown[: self.size] = self.vectors[: self.size]
            self.vectors = grown
            extra = capacity - len(self.alive)
            self.alive = np.concatenate([self.alive, np.zeros(extra, bool)])
            self.payload_of = np.concatenate([self.payload_of, np.zeros(extra, np.int32)])
        block = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        self.vectors[self.size : need] = block
        self.scan.add(block)
        for offset, (cid, payload) in enumerate(zip(ids, payloads, strict=True)):
            row = self.size + offset
            self.row[cid] = row
            self.payload_of[row] = self.payloads.intern(payload)
        self.alive[self.size : need] = True
        self.ids.extend(ids)
        self.doc_ids.extend(p.doc_id for p in payloads)
        self.size = need
        self.dirty = True

    def remove(self, ids: Iterable[str]) -> None:
        rows = [r for c in set(ids) if (r := self.row.pop(c, None)) is not None]
        if not rows:
            return
        codes = self._codes()
        for r in rows:
            self.alive[r] = False
            self.vectors[r] = 0.0
            codes[r] = 0  # fp16 zero: the scan copy forgets the vector too
            self.ids[r] = None
            self.doc_ids[r] = ""
        self.dead += len(rows)
        self.dirty = True
        if self.dead >= max(1024, _COMPACT_SHARE * self.size):
            self.compact()

    def _codes(self) -> NDArray[np.uint8]:
        """A writable view of the scan index's codes, one row per vector."""
        size = self.scan.ntotal * self.scan.code_size
        if not size:
            return np.zeros((0, self.scan.code_size), dtype=np.uint8)
        flat = faiss.rev_swig_ptr(self.scan.codes.data(), size)
        return np.asarray(flat).reshape(self.scan.ntotal, self.scan.code_size)

    def compact(self) -> None:
        """Keep the live rows only, renumbered in order; rebuild the scan index."""
        if not self.dead:
            return
        keep = np.flatnonzero(self.alive[: self.size])
        vectors = np.ascontiguousarray(self.vectors[keep])
        ids = [self.ids[r] for r in keep.tolist()]
        doc_ids = [self.doc_ids[r] for r in keep.tolist()]
        used = self.payload_of[keep]
        payload_of = self.payloads.compact(used)[used]
        self.vectors = vectors
        self.scan.reset()
        if len(keep):
            self.scan.add(vectors)
        self.size, self.dead = len(keep), 0
        self.ids, self.doc_ids = ids, doc_ids
        self.row = {cid: i for i, cid in enumerate(ids) if cid is not None}
        self.alive = np.ones(self.size, dtype=bool)
        self.payload_of = payload_of.astype(np.int32)
        self.dirty = True

    def search(
        self, query: NDArray[np.float32], limit: int, flt: Filter | None
    ) -> list[tuple[str, float]]:
        if not self.live or limit <= 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, self.dim)
        mask: NDArray[np.bool_] | None = None
        if self.dead:
            mask = self.alive[: self.size]
        if flt is not None:
            passes = self.payloads.allowed(flt)[self.payload_of[: self.size]]
            mask = passes if mask is None else mask & passes
        eligible = self.live if mask is None else int(mask.sum())
        if not eligible:
            return []
        k = min(limit + _RESCORE_MARGIN, eligible)
        if mask is None:
            _, labels = self.scan.search(q, k)
        else:
            bits = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(self.size, faiss.swig_ptr(bits))
            params = faiss.SearchParameters()
            params.sel = selector
            _, labels = self.scan.search(q, k, params=params)
        rows = labels[0][labels[0] >= 0]
        exact = self.vectors[rows] @ q[0]
        order = np.lexsort((rows, -exact))[:limit]  # ties: the row added first
        return [(str(self.ids[rows[i]]), float(exact[i])) for i in order]

    def sidecar(self) -> dict[str, Any]:
        entries = [self.payloads.entry(i) for i in range(len(self.payloads))]
        return {
            "format": _FORMAT,
            "ids": self.ids[: self.size],
            "doc_ids": self.doc_ids[: self.size],
            "payload_of": self.payload_of[: self.size].tolist(),
            "payloads": [{"tags": sorted(tags), "meta": meta} for tags, meta in entries],
        }

    @classmethod
    def load(cls, dim: int, vectors: NDArray[np.float32], meta: dict[str, Any]) -> _Collection:
        """A collection from a saved matrix and sidecar (format 1: one payload per row)."""
        out = cls(dim)
        if meta.get("format") == _FORMAT:
            table = [(frozenset(p["tags"]), dict(p["meta"])) for p in meta["payloads"]]
            payloads = [
                Payload(doc_id, *table[entry])
                for doc_id, entry in zip(meta["doc_ids"], meta["payload_of"], strict=True)
            ]
        else:
            payloads = [
                Payload(p["doc_id"], frozenset(p["tags"]), p["meta"]) for p in meta["payloads"]
            ]
        if len(payloads):
            out.append(list(meta["ids"]), vectors, payloads)
        out.dirty = False
        return out


class FlatVectorStore:
    """Exact search over float32 matrices persisted in ``directory``.

    Not safe for concurrent writers: the knowledge service serialises writes.

    Args:
        directory: where collections are saved; None keeps everything in memory.
        dim: vector length.
    """

    def __init__(self, directory: Path | None, dim: int) -> None:
        # One query is one scan: extra OpenMP threads only spin, and on a shared CPU
        # their busy-waiting tripled the scan time (32 ms against 10 at 100k, load 10).
        faiss.omp_set_num_threads(1)
        self._dir = directory
        self._dim = dim
        self._collections: dict[str, _Collection] = {}
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def _path(self, collection: str) -> Path:
        if not _SAFE.match(collection):
            raise ValueError(f"collection name {collection!r} is not a safe file name")
        assert self._dir is not None
        return self._dir / f"{collection}.npy"

    def _get(self, collection: str) -> _Collection:
        found = self._collections.get(collection)
        if found is not None:
            return found
        made = _Collection(self._dim)
        if self._dir is not None and self._path(collection).is_file():
            path = self._path(collection)
            meta = json.loads(path.with_suffix(".json").read_text())
            vectors = np.load(path)
            if vectors.ndim != 2 or vectors.shape[1] != self._dim:
                raise ServiceUnavailableError(
                    f"knowledge base {collection!r} holds {vectors.shape[-1]}-d vectors and the "
                    f"embedding model gives {self._dim}-d ones; re-embed it: "
                    f"luodi kb reembed {collection}",
                    code="kb_needs_reembed",
                )
            made = _Collection.load(self._dim, vectors, meta)
        self._collections[collection] = made
        return made

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: NDArray[np.float32],
        payloads: Sequence[Payload],
    ) -> None:
        """Insert or replace vectors (rows of unit norm) with their payloads."""
        c = self._get(collection)
        c.remove(ids)
        if len(ids):
            c.append(ids, vectors, payloads)

    def delete(self, collection: str, ids: Iterable[str]) -> None:
        """Remove vectors by chunk id; unknown ids are ignored."""
        self._get(collection).remove(ids)

    def search(
        self, collection: str, query: NDArray[np.float32], limit: int, flt: Filter | None = None
    ) -> list[tuple[str, float]]:
        """Best ``limit`` ``(chunk_id, cosine)`` pairs that pass ``flt``."""
        return self._get(collection).search(query, limit, flt)

    def count(self, collection: str) -> int:
        """Vectors stored in ``collection``."""
        return self._get(collection).live

    def drop(self, collection: str) -> None:
        """Delete a collection and everything in it."""
        self._collections.pop(collection, None)
        if self._dir is not None:
            for path in (self._path(collection), self._path(collection).with_suffix(".json")):
                path.unlink(missing_ok=True)

    def flush(self) -> None:
        """Write every changed collection's live rows (deleted vectors leave the disk)."""
        if self._dir is None:
            return
        for name, c in self._collections.items():
            if not c.dirty:
                continue
            c.compact()
            path = self._path(name)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, c.vectors[: c.size])
            tmp_meta = path.with_suffix(".tmp.json")
            tmp_meta.write_text(json.dumps(c.sidecar(), ensure_ascii=False))
            os.replace(tmp, path)
            os.replace(tmp_meta, path.with_suffix(".json"))
            c.dirty = False
