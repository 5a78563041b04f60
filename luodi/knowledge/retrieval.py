"""Hybrid retrieval: BM25 and dense rankings fused by reciprocal rank fusion (RRF)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from luodi.knowledge.index.bm25 import BM25Index
from luodi.knowledge.index.vector_store import VectorStore
from luodi.knowledge.types import Filter, Hit

__all__ = ["HybridRetriever", "Reranker", "rerank", "rrf_fuse"]


class Reranker(Protocol):
    """Optional second stage: scores (query, passage) pairs; higher is more relevant."""

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...


def rerank(reranker: Reranker, query: str, hits: Sequence[Hit]) -> list[Hit]:
    """``hits`` in the reranker's order, each carrying the reranker's score."""
    scores = reranker.score(query, [h.text for h in hits])
    order = sorted(range(len(hits)), key=lambda i: scores[i], reverse=True)
    return [dataclasses.replace(hits[i], score=scores[i]) for i in order]


def rrf_fuse(rankings: Sequence[Sequence[str]], k: int) -> list[tuple[str, float]]:
    """Fuse ranked id lists: ``score(d) = sum over lists of 1 / (k + rank)``, rank from 1.

    Ties keep the order in which ids were first seen, so results are deterministic.
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: kv[1], reverse=True)


class HybridRetriever:
    """Searches one collection's BM25 index and vector store, then fuses the rankings.

    Args:
        candidates: ids each retriever contributes to fusion.
        rrf_k: the RRF constant.
    """

    def __init__(self, candidates: int, rrf_k: int) -> None:
        self.candidates = candidates
        self.rrf_k = rrf_k

    def search(
        self,
        collection: str,
        query: str,
        query_vector: NDArray[np.float32],
        bm25: BM25Index,
        store: VectorStore,
        flt: Filter | None,
    ) -> list[tuple[str, float]]:
        """Fused ``(chunk_id, rrf_score)`` pairs, best first, at most ``candidates``."""
        lexical = [cid for cid, _ in bm25.search(query, self.candidates, flt)]
        dense = [cid for cid, _ in store.search(collection, query_vector, self.candidates, flt)]
        return rrf_fuse([lexical, dense], self.rrf_k)[: self.candidates]
