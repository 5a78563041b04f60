"""An in-memory BM25 (Okapi) index with a Chinese-aware tokenizer (jieba search mode)."""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Iterable

import jieba

from luodi.knowledge.types import Filter, Payload

__all__ = ["BM25Index", "Segmenter"]

_WORD = re.compile(r"\w", re.UNICODE)


class Segmenter:
    """Lower-cased jieba search-mode terms without punctuation or spaces.

    Holds its own ``jieba.Tokenizer`` so that no global jieba state is changed.
    """

    def __init__(self) -> None:
        self._jieba = jieba.Tokenizer()

    def terms(self, text: str) -> list[str]:
        """Index terms of ``text``; CJK runs give words and their sub-words."""
        return [t for t in self._jieba.cut_for_search(text.lower()) if _WORD.search(t)]


class BM25Index:
    """Term postings of one collection's chunks.

    Args:
        segmenter: tokenizer shared by indexing and querying.
        k1: term frequency saturation.
        b: length normalisation.
    """

    def __init__(self, segmenter: Segmenter, k1: float = 1.2, b: float = 0.75) -> None:
        self._seg = segmenter
        self._k1 = k1
        self._b = b
        self._postings: dict[str, dict[str, int]] = {}
        self._terms: dict[str, list[str]] = {}
        self._lengths: dict[str, int] = {}
        self._payloads: dict[str, Payload] = {}
        self._total = 0

    def __len__(self) -> int:
        return len(self._lengths)

    def add(self, items: Iterable[tuple[str, str, Payload]]) -> None:
        """Index ``(chunk_id, text, payload)`` triples; a known id is replaced."""
        for chunk_id, text, payload in items:
            if chunk_id in self._lengths:
                self.remove([chunk_id])
            counts = Counter(self._seg.terms(text))
            for term, tf in counts.items():
                self._postings.setdefault(term, {})[chunk_id] = tf
            self._terms[chunk_id] = list(counts)
            n = sum(counts.values())
            self._lengths[chunk_id] = n
            self._payloads[chunk_id] = payload
            self._total += n

    def remove(self, chunk_ids: Iterable[str]) -> None:
        """Forget chunks; unknown ids are ignored."""
        for chunk_id in chunk_ids:
            n = self._lengths.pop(chunk_id, None)
            if n is None:
                continue
            self._total -= n
            self._payloads.pop(chunk_id, None)
            for term in self._terms.pop(chunk_id, []):
                posting = self._postings.get(term)
                if posting is not None:
                    posting.pop(chunk_id, None)
                    if not posting:
                        del self._postings[term]

    def search(self, query: str, limit: int, flt: Filter | None = None) -> list[tuple[str, float]]:
        """Best ``limit`` ``(chunk_id, score)`` pairs for ``query`` that pass ``flt``."""
        n_docs = len(self._lengths)
        if not n_docs or limit <= 0:
            return []
        avg = self._total / n_docs
        scores: dict[str, float] = {}
        for term in set(self._seg.terms(query)):
            posting = self._postings.get(term)
            if not posting:
                continue
            idf = math.log(1.0 + (n_docs - len(posting) + 0.5) / (len(posting) + 0.5))
            for chunk_id, tf in posting.items():
                norm = self._k1 * (1.0 - self._b + self._b * self._lengths[chunk_id] / avg)
                scores[chunk_id] = scores.get(chunk_id, 0.0) + idf * tf * (self._k1 + 1) / (
                    tf + norm
                )
        if flt is not None:
            ranked = heapq.nlargest(len(scores), scores.items(), key=lambda kv: kv[1])
            out = []
            for chunk_id, score in ranked:
                if flt.matches(self._payloads[chunk_id]):
                    out.append((chunk_id, score))
                    if len(out) == limit:
                        break
            return out
        return heapq.nlargest(limit, scores.items(), key=lambda kv: kv[1])
