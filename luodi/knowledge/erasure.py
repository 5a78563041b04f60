"""Erasure: removing documents from the catalog, both indexes and the kept originals.

A deleted document must leave no text behind anywhere a search or a download could
find it, so every removal goes through here: chunk rows, vectors, BM25 postings and
the original file go together, under the service's lock, and the erasure is audited.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from luodi.knowledge.catalog import ChunkRow, DocumentRow, collection_names, truncate_wal
from luodi.knowledge.stores import Stores
from luodi.knowledge.types import AuditSink

__all__ = ["Erasure"]


class Erasure:
    """Deletes documents everywhere they are kept; ``KnowledgeService`` delegates to it.

    Args:
        stores: the catalog, write lock, indexes and originals it removes from.
        audit: records each erasure; None: not recorded.
    """

    def __init__(self, stores: Stores, *, audit: AuditSink | None) -> None:
        self._stores = stores
        self._audit = audit

    def erase_where(
        self,
        key: str,
        value: str,
        *,
        collections: Sequence[str] | None,
        actor: str,
        allow: Callable[[str, DocumentRow], bool] = lambda _name, _row: True,
    ) -> int:
        """Delete every document whose metadata ``key`` equals ``value``.

        ``allow(collection, row)`` says which documents the asker may erase; the others
        are left alone and not counted. Returns the number of documents removed, across
        ``collections`` (None: all).
        """
        with Session(self._stores.catalog) as session:
            names = list(collections) if collections is not None else collection_names(session)
            removed = 0
            for name in names:
                ids = [
                    d.id
                    for d in session.scalars(
                        select(DocumentRow).where(DocumentRow.collection == name)
                    )
                    if d.meta.get(key) == value and allow(name, d)
                ]
                if ids:
                    self.delete(name, ids, actor=actor, reason=f"{key}={value}")
                    removed += len(ids)
        return removed

    def delete(self, collection: str, doc_ids: list[str], *, actor: str, reason: str) -> None:
        """Remove documents of one collection with their chunks, vectors and originals."""
        with self._stores.lock, Session(self._stores.catalog) as session:
            self.unindex(session, collection, doc_ids)
            session.execute(delete(DocumentRow).where(DocumentRow.id.in_(doc_ids)))
            session.commit()
            self._stores.vectors.flush()
            # The saved BM25 index still holds the erased text's terms: it goes too (the
            # next start rebuilds it from the catalog, and saves it again).
            self.forget_bm25_file(collection)
            for doc_id in doc_ids:
                self.forget_original(doc_id)
            # Freed pages are zeroed in the file; the WAL still holds them until this.
            truncate_wal(self._stores.catalog)
        if self._audit is not None:
            self._audit.record(
                "kb.erase",
                f"kb:{collection}",
                {"documents": doc_ids, "reason": reason, "actor": actor},
            )

    def unindex(self, session: Session, collection: str, doc_ids: list[str]) -> None:
        """Drop the documents' chunks from both indexes and the catalog (not committed).

        The caller holds the lock and commits; re-ingesting a changed document uses
        this too, before it writes the new chunks.
        """
        chunk_ids = list(
            session.scalars(select(ChunkRow.id).where(ChunkRow.document_id.in_(doc_ids)))
        )
        self._stores.vectors.delete(collection, chunk_ids)
        self._stores.bm25_of(session, collection).remove(chunk_ids)
        session.execute(delete(ChunkRow).where(ChunkRow.document_id.in_(doc_ids)))

    def forget_bm25_file(self, collection: str) -> None:
        """Delete a collection's saved BM25 index, if there is one."""
        path = self._stores.bm25_file(collection)
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)

    def forget_original(self, doc_id: str) -> None:
        """Delete a document's kept uploaded file, if there is one."""
        (self._stores.originals / doc_id).unlink(missing_ok=True)
