"""Whether retrieved passages can answer a question, or the assistant should say it does not know.

Retrieval always returns its best passages, even for a question the knowledge base
cannot answer ("do you ship to Canada?" finds the shipping passage). A passage is kept
only when its relevance, the mean of two signals, reaches ``support.min_relevance``:

- meaning: the embedding cosine of question and passage (Chinese through its English
  gloss when the assistant's intent model embeds it so, as for the bundled MiniLM);
- coverage: the share of the question's lexical terms (``lexical.terms``) the passage
  contains. A question about something the passage never names (Canada, cash, a
  warehouse) leaves terms uncovered, however close the topic.

The default threshold (0.35) was calibrated on ``benchmarks/corpora/support/``
``answerable_dev.jsonl`` and ``unanswerable_dev.jsonl``; ``benchmarks/support.py``
measures the refusal rates on the other sets (docs/support.md).

Passage vectors are cached by chunk: a knowledge base's passages come back turn after
turn, and embedding three of them per turn was most of a turn's CPU under load.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from luodi.apps.support.glossary import Glossary
from luodi.apps.support.lexical import language_of, terms
from luodi.embedding import Embedder
from luodi.knowledge.types import Hit

__all__ = ["RelevanceCheck"]

_CACHED_PASSAGES = 4096


class RelevanceCheck:
    """Scores passages against a question; keeps those relevant enough to answer from."""

    def __init__(
        self,
        embedder: Callable[[], Embedder | None],
        glossary: Callable[[], Glossary],
        *,
        min_relevance: float,
    ) -> None:
        self._embedder = embedder
        self._glossary = glossary
        self.min_relevance = min_relevance
        self._vectors: OrderedDict[tuple[str, bool, str], NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()

    def _view(self, text: str, gloss: bool) -> str:
        return self._glossary().gloss(text) if gloss and language_of(text) == "zh" else text

    def _passage_vectors(
        self, embedder: Embedder, hits: Sequence[Hit], gloss: bool
    ) -> list[NDArray[np.float32]]:
        keys = [(h.chunk_id, gloss, h.text) for h in hits]
        with self._lock:
            known = {k: self._vectors[k] for k in keys if k in self._vectors}
            for k in known:
                self._vectors.move_to_end(k)
        missing = [(k, h) for k, h in zip(keys, hits, strict=True) if k not in known]
        if missing:
            fresh = embedder.embed([self._view(h.text, gloss) for _, h in missing])
            with self._lock:
                for (k, _), vector in zip(missing, fresh, strict=True):
                    known[k] = self._vectors[k] = vector
                while len(self._vectors) > _CACHED_PASSAGES:
                    self._vectors.popitem(last=False)
        return [known[k] for k in keys]

    def scores(self, question: str, hits: Sequence[Hit], *, gloss: bool = False) -> list[float]:
        """Each passage's relevance to ``question`` in [0, 1] (about; cosines may dip below 0)."""
        if not hits:
            return []
        asked = set(terms(question))
        coverage = [len(asked & set(terms(h.text))) / len(asked) if asked else 0.0 for h in hits]
        embedder = self._embedder()
        if embedder is None:  # words only: coverage is the whole score
            return coverage
        question_vector = embedder.embed([self._view(question, gloss)])[0]
        passages = self._passage_vectors(embedder, hits, gloss)
        meaning = [float(question_vector @ p) for p in passages]
        return [(m + c) / 2 for m, c in zip(meaning, coverage, strict=True)]

    def relevant(self, question: str, hits: Sequence[Hit], *, gloss: bool = False) -> list[Hit]:
        """The passages relevant enough to answer from, in retrieval order."""
        scores = self.scores(question, hits, gloss=gloss)
        return [h for h, s in zip(hits, scores, strict=True) if s >= self.min_relevance]
