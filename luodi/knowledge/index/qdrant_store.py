"""``QdrantVectorStore``: the ``VectorStore`` protocol over a Qdrant server or cluster.

For collections past a few hundred thousand chunks, or several gateway replicas sharing
one index, point ``knowledge.vector_store`` at Qdrant. Access tags and metadata become
payload filters evaluated inside Qdrant, so a hidden chunk never takes a top-k place.
The same class runs on Qdrant's embedded local mode (``QdrantClient(path=...)`` or
``":memory:"``), which is how it is tested here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray
from qdrant_client import QdrantClient, models

from luodi.knowledge.types import Filter, Payload

__all__ = ["QdrantVectorStore"]

_NAMESPACE = uuid.UUID("6f0c2a8e-8d0c-4d8a-9a57-1f3c5b2e7d10")


def _point_id(chunk_id: str) -> str:
    # Qdrant ids are integers or UUIDs; a chunk id maps to one UUID, always the same.
    return str(uuid.uuid5(_NAMESPACE, chunk_id))


class QdrantVectorStore:
    """Chunk vectors in Qdrant, one Qdrant collection per knowledge base."""

    def __init__(self, client: QdrantClient, dim: int, *, prefix: str = "luodi_") -> None:
        self._client = client
        self._dim = dim
        self._prefix = prefix

    @classmethod
    def connect(cls, url: str, dim: int, *, api_key: str | None = None) -> QdrantVectorStore:
        """A store on a Qdrant server (``http://qdrant:6333``) or cluster."""
        return cls(QdrantClient(url=url, api_key=api_key), dim)

    def _name(self, collection: str) -> str:
        return f"{self._prefix}{collection}"

    def _ensure(self, collection: str) -> str:
        name = self._name(collection)
        if not self._client.collection_exists(name):
            self._client.create_collection(
                name,
                vectors_config=models.VectorParams(size=self._dim, distance=models.Distance.COSINE),
            )
        return name

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: NDArray[np.float32],
        payloads: Sequence[Payload],
    ) -> None:
        name = self._ensure(collection)
        points = [
            models.PointStruct(
                id=_point_id(chunk_id),
                vector=vector.astype(np.float32).tolist(),
                payload={
                    "chunk_id": chunk_id,
                    "doc_id": payload.doc_id,
                    "tags": sorted(payload.tags),
                    "meta": dict(payload.meta),
                },
            )
            for chunk_id, vector, payload in zip(ids, vectors, payloads, strict=True)
        ]
        if points:
            self._client.upsert(name, points=points, wait=True)

    def delete(self, collection: str, ids: Iterable[str]) -> None:
        name = self._name(collection)
        points: list[int | str | uuid.UUID] = [_point_id(i) for i in ids]
        if points and self._client.collection_exists(name):
            self._client.delete(name, points_selector=models.PointIdsList(points=points), wait=True)

    def search(
        self, collection: str, query: NDArray[np.float32], limit: int, flt: Filter | None = None
    ) -> list[tuple[str, float]]:
        name = self._name(collection)
        if not self._client.collection_exists(name):
            return []
        result = self._client.query_points(
            name,
            query=query.astype(np.float32).tolist(),
            limit=limit,
            query_filter=_to_qdrant(flt),
            with_payload=["chunk_id"],
        )
        return [(str(p.payload["chunk_id"]), float(p.score)) for p in result.points if p.payload]

    def count(self, collection: str) -> int:
        name = self._name(collection)
        if not self._client.collection_exists(name):
            return 0
        return int(self._client.count(name, exact=True).count)

    def drop(self, collection: str) -> None:
        name = self._name(collection)
        if self._client.collection_exists(name):
            self._client.delete_collection(name)

    def flush(self) -> None:
        """Nothing to do: every write above waits for Qdrant to apply it."""


def _to_qdrant(flt: Filter | None) -> models.Filter | None:
    if flt is None:
        return None
    must: list[models.Condition] = [
        models.FieldCondition(key=f"meta.{key}", match=models.MatchValue(value=value))
        for key, value in flt.meta.items()
    ]
    if flt.tags is not None:
        if not flt.tags:
            # No readable tag at all: nothing may match.
            must.append(models.HasIdCondition(has_id=[]))
        else:
            must.append(
                models.FieldCondition(key="tags", match=models.MatchAny(any=sorted(flt.tags)))
            )
    return models.Filter(must=must) if must else None
