"""Re-embedding: a collection's vectors computed again by the current embedding model.

When ``embeddings.model`` changes (another model, another dimension, or vectors the
old ones are no longer close to), the chunks' text in the catalog is embedded again,
in batches a background job can follow and yield between, and the collection's
vectors are replaced in one step under the service's lock: searches before that
step use the old vectors, after it the new ones. Chunks added meanwhile are embedded
in that step too; chunks deleted meanwhile are not brought back. The collection then
records the model (``kb_collections.embedder``), which lifts the refusal to search it.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session

from luodi.embedding import Embedder
from luodi.knowledge.catalog import CollectionRow, chunk_entries, require_collection
from luodi.knowledge.stores import Stores
from luodi.knowledge.types import IngestReport, Payload, Tracker

__all__ = ["fingerprint", "reembed"]


def fingerprint(embedder: Embedder) -> str:
    """What a collection records of the model its vectors came from: ``name/dim``."""
    return f"{embedder.name}/{embedder.dim}"


def reembed(
    stores: Stores, collection: str, embedder: Embedder, batch: int, tracker: Tracker | None
) -> IngestReport:
    """Embed every chunk of ``collection`` again and swap its vectors in at once."""
    with Session(stores.catalog) as session:
        require_collection(session, collection)
        entries = list(chunk_entries(session, collection))
    if tracker is not None:
        tracker.planned(len(entries))
    vectors: dict[str, np.ndarray] = {}
    for lo in range(0, len(entries), batch):
        part = entries[lo : lo + batch]
        fresh = embedder.embed([text for _, text, _ in part])
        for (chunk_id, _, _), vector in zip(part, fresh, strict=True):
            vectors[chunk_id] = vector
        if tracker is not None:
            tracker.embedded(len(part))
    with stores.lock, Session(stores.catalog) as session:
        current = list(chunk_entries(session, collection))
        late = [(cid, text) for cid, text, _ in current if cid not in vectors]
        if late:
            for (cid, _), vector in zip(late, embedder.embed([t for _, t in late]), strict=True):
                vectors[cid] = vector
        ids = [cid for cid, _, _ in current]
        payloads: list[Payload] = [p for _, _, p in current]
        stores.vectors.drop(collection)
        if ids:
            matrix = np.stack([vectors[cid] for cid in ids]).astype(np.float32)
            stores.vectors.upsert(collection, ids, matrix, payloads)
        stores.vectors.flush()
        row = session.get(CollectionRow, collection)
        assert row is not None
        row.embedder = fingerprint(embedder)
        session.commit()
    return IngestReport(chunks=len(ids))
