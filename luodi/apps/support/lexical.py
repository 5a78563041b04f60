"""A TF-IDF index of short utterances that handles Chinese: characters, bigrams, jieba words.

Chinese has no spaces, and customers write the same intent with different words
(退款 / 退钱 / 钱退回来): character unigrams and bigrams match across word choices,
jieba words reward whole-word matches. English gets words and word bigrams, lightly
stemmed. Vectors are L2-normalised, so a dot product is a cosine similarity.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from luodi.knowledge.index.jieba_dictionary import TOKENIZER

__all__ = ["LexicalIndex", "cjk_runs", "language_of", "segment_words", "terms"]

_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_LATIN = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    {
        "a",
        "an",
        "the",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "am",
        "do",
        "does",
        "did",
        "to",
        "of",
        "in",
        "on",
        "for",
        "at",
        "it",
        "this",
        "that",
        "and",
        "or",
        "can",
        "could",
        "would",
        "will",
        "should",
        "please",
        "hi",
        "hello",
        "there",
        "with",
        "what",
        "how",
        "when",
        "where",
        "why",
        "which",
        "about",
        "from",
        "have",
        "has",
        "had",
        "just",
    }
)
_CJK_STOP = frozenset("的了吗呢吧啊呀我你您是在有这那个一么嘛哦")

# The process's one jieba dictionary (it takes a second to load), shared with the KBs.
_JIEBA = TOKENIZER


def _stem(word: str) -> str:
    """Crude English suffix stripping: enough to meet 'refunds' with 'refund'."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def language_of(text: str) -> str:
    """``zh`` when the text holds Chinese characters, else ``en``."""
    return "zh" if _CJK_RUN.search(text) else "en"


def cjk_runs(text: str) -> list[tuple[int, int]]:
    """Start and end of each run of Chinese characters in ``text``."""
    return [match.span() for match in _CJK_RUN.finditer(text)]


def segment_words(run: str) -> list[str]:
    """jieba's words of a run of Chinese characters."""
    return list(_JIEBA.cut(run))


def terms(text: str) -> list[str]:
    """Index terms of ``text``: CJK characters, bigrams and jieba words; English words and
    word bigrams (stop words dropped, stemmed)."""
    text = _normalise(text)
    out: list[str] = []
    for run in _CJK_RUN.findall(text):
        chars = [c for c in run if c not in _CJK_STOP]
        out += chars
        out += [run[i : i + 2] for i in range(len(run) - 1)]
        out += [f"w:{w}" for w in _JIEBA.cut(run) if len(w) > 1]
    words = [_stem(w) for w in _LATIN.findall(text) if w not in _STOP]
    out += words
    out += [f"{a}_{b}" for a, b in itertools.pairwise(words)]
    return out


class LexicalIndex:
    """TF-IDF rows of a fixed set of utterances, for cosine similarity to a query."""

    def __init__(self, texts: Sequence[str]) -> None:
        docs = [Counter(terms(t)) for t in texts]
        df: Counter[str] = Counter()
        for doc in docs:
            df.update(doc.keys())
        self._vocab = {term: i for i, term in enumerate(sorted(df))}
        n = len(docs)
        self._idf = np.array(
            [math.log((1 + n) / (1 + df[t])) + 1.0 for t in sorted(df)], dtype=np.float32
        )
        self.matrix: NDArray[np.float32] = (
            np.stack([self._vector(doc) for doc in docs])
            if docs
            else np.zeros((0, 0), dtype=np.float32)
        )

    def _vector(self, counts: Counter[str]) -> NDArray[np.float32]:
        row = np.zeros(len(self._vocab), dtype=np.float32)
        for term, count in counts.items():
            i = self._vocab.get(term)
            if i is not None:
                row[i] = (1.0 + math.log(count)) * self._idf[i]
        norm = float(np.linalg.norm(row))
        return row / norm if norm > 0 else row

    def query_vector(self, text: str) -> NDArray[np.float32]:
        """The TF-IDF vector of ``text`` in this index's vocabulary (terms it lacks drop out)."""
        return self._vector(Counter(terms(text)))

    def query(self, text: str) -> NDArray[np.float32]:
        """Cosine similarity of ``text`` to every indexed utterance, in index order."""
        if not self._vocab:
            return np.zeros(0, dtype=np.float32)
        result: NDArray[np.float32] = self.matrix @ self._vector(Counter(terms(text)))
        return result
