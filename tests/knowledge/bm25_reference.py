"""The dict-of-dicts BM25 scorer luodi used before the numpy index: the reference its
replacement must agree with, score for score."""

from __future__ import annotations

import math
from collections import Counter

from luodi.knowledge.index.bm25 import Segmenter
from luodi.knowledge.types import Filter, Payload


class ReferenceBM25:
    """Okapi BM25 over Python dicts, exactly as ``BM25Index`` scored until it was vectorised."""

    def __init__(self, segmenter: Segmenter, k1: float = 1.2, b: float = 0.75) -> None:
        self._seg = segmenter
        self._k1, self._b = k1, b
        self._postings: dict[str, dict[str, int]] = {}
        self._terms: dict[str, list[str]] = {}
        self._lengths: dict[str, int] = {}
        self._payloads: dict[str, Payload] = {}
        self._total = 0

    def add(self, chunk_id: str, text: str, payload: Payload) -> None:
        if chunk_id in self._lengths:
            self.remove([chunk_id])
        counts = Counter(self._seg.terms(text))
        for term, tf in counts.items():
            self._postings.setdefault(term, {})[chunk_id] = tf
        self._terms[chunk_id] = list(counts)
        self._lengths[chunk_id] = sum(counts.values())
        self._payloads[chunk_id] = payload
        self._total += self._lengths[chunk_id]

    def remove(self, chunk_ids: list[str]) -> None:
        for chunk_id in chunk_ids:
            n = self._lengths.pop(chunk_id, None)
            if n is None:
                continue
            self._total -= n
            self._payloads.pop(chunk_id)
            for term in self._terms.pop(chunk_id):
                posting = self._postings[term]
                posting.pop(chunk_id)
                if not posting:
                    del self._postings[term]

    def scores(self, query: str, flt: Filter | None = None) -> dict[str, float]:
        """Every matching chunk's score (no cut-off), filtered."""
        n_docs = len(self._lengths)
        if not n_docs:
            return {}
        avg = self._total / n_docs
        scores: dict[str, float] = {}
        for term in set(self._seg.terms(query)):
            posting = self._postings.get(term, {})
            idf = math.log(1.0 + (n_docs - len(posting) + 0.5) / (len(posting) + 0.5))
            for chunk_id, tf in posting.items():
                norm = self._k1 * (1.0 - self._b + self._b * self._lengths[chunk_id] / avg)
                scores[chunk_id] = scores.get(chunk_id, 0.0) + idf * tf * (self._k1 + 1) / (
                    tf + norm
                )
        return {c: s for c, s in scores.items() if flt is None or flt.matches(self._payloads[c])}
