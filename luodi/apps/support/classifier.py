"""Nearest-example intent recognition: embeddings and a lexical index, fused and calibrated.

Each intent's score is the mean of its ``k`` most similar examples, where similarity is
``w * cosine(embeddings) + (1 - w) * cosine(tf-idf)``. The confidence of the best intent
is not the raw score: a logistic model maps (best score, margin over the runner-up) to
the probability of being right, fitted at load time by leaving each configured example
out in turn and classifying it with the rest. Out-of-scope examples, when the file has
some, are one more class; otherwise out-of-scope is what a low confidence sends to the
model (``judge.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from luodi.apps.support.assistant import OUT_OF_SCOPE, Assistant
from luodi.apps.support.lexical import LexicalIndex
from luodi.embedding import Embedder

__all__ = ["Calibrator", "Classification", "IntentModel"]

Path = Literal["knn", "llm"]


@dataclass
class Classification:
    """An utterance's intent, its calibrated confidence and the runners-up."""

    intent: str
    confidence: float
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    path: Path = "knn"
    latency_ms: float = 0.0

    def wire(self) -> dict[str, Any]:
        """The JSON of ``POST /v1/apps/support/{assistant}/classify``."""
        return {
            "intent": self.intent,
            "confidence": round(self.confidence, 4),
            "alternatives": [
                {"intent": name, "confidence": round(p, 4)} for name, p in self.alternatives
            ],
            "path": self.path,
            "latency_ms": round(self.latency_ms, 2),
        }


class Calibrator:
    """P(the best intent is right) from (best score, margin): L2-regularised logistic fit."""

    def __init__(self, weights: NDArray[np.float64] | None = None) -> None:
        # Before any fit: trust the margin a little (a neutral, monotone guess).
        self.weights = weights if weights is not None else np.array([0.0, 2.0, 8.0])

    @staticmethod
    def _design(features: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.hstack([np.ones((len(features), 1)), features])

    def fit(self, features: NDArray[np.float64], right: NDArray[np.float64]) -> Calibrator:
        """Fit on rows of (best score, margin) and whether the best was right (0/1)."""
        if len(features) < 4 or right.min() == right.max():
            # All right (or all wrong): no slope to learn; keep the prior, shifted to the rate.
            rate = float(np.clip(right.mean() if len(right) else 0.5, 0.05, 0.95))
            self.weights = np.array([math.log(rate / (1 - rate)) - 1.0, 2.0, 8.0])
            return self
        x, w = self._design(features), np.zeros(3)
        for _ in range(300):  # Newton steps converge in a handful; 300 is a cap
            p = 1 / (1 + np.exp(-(x @ w)))
            grad = x.T @ (p - right) + 0.01 * w
            hess = x.T @ (x * (p * (1 - p))[:, None]) + 0.01 * np.eye(3)
            step = np.linalg.solve(hess, grad)
            w -= step
            if float(np.abs(step).max()) < 1e-6:
                break
        self.weights = w
        return self

    def probability(self, best: float, margin: float) -> float:
        z = float(self.weights @ np.array([1.0, best, margin]))
        return 1 / (1 + math.exp(-max(-30.0, min(30.0, z))))


class IntentModel:
    """One assistant's examples, indexed for nearest-example classification."""

    def __init__(
        self,
        assistant: Assistant,
        embedder: Embedder | None,
        *,
        neighbours: int = 3,
        embedding_weight: float = 0.5,
    ) -> None:
        self.assistant = assistant
        self._embedder = embedder
        self._k = neighbours
        self._w = embedding_weight if embedder is not None else 0.0
        texts: list[str] = []
        labels: list[str] = []
        for intent in assistant.intents:
            # The description is one more example: it names the intent's key words.
            said = [*intent.examples, intent.description] if intent.description else intent.examples
            texts += said
            labels += [intent.name] * len(said)
        texts += assistant.out_of_scope.examples
        labels += [OUT_OF_SCOPE] * len(assistant.out_of_scope.examples)
        self.texts = texts
        self.labels = labels
        self.classes = list(dict.fromkeys(labels))
        self._members = [
            np.array([i for i, lab in enumerate(labels) if lab == c]) for c in self.classes
        ]
        self._lexical = LexicalIndex(texts)
        self._vectors = embedder.embed(texts).astype(np.float32) if embedder is not None else None
        self.calibrator = Calibrator()
        self.loo_accuracy = self._calibrate()

    # -- similarity -------------------------------------------------------------------

    def _similarity(self, text: str) -> NDArray[np.float32]:
        lexical = self._lexical.query(text)
        if self._vectors is None or self._embedder is None:
            return lexical
        vector = self._embedder.embed([text])[0]
        dense: NDArray[np.float32] = self._vectors @ vector
        return self._w * dense + (1 - self._w) * lexical

    def _class_scores(self, sims: NDArray[np.float32]) -> NDArray[np.float64]:
        """Each class's mean of its top-k similarities (``-inf`` entries are left out)."""
        scores = np.zeros(len(self.classes))
        for c, members in enumerate(self._members):
            values = sims[members]
            values = values[np.isfinite(values)]
            if len(values) == 0:
                scores[c] = 0.0
                continue
            top = np.sort(values)[-self._k :]
            scores[c] = float(top.mean())
        return scores

    def _calibrate(self) -> float:
        """Fit the calibrator on leave-one-out classifications; returns their accuracy."""
        n = len(self.texts)
        if n < 2:
            return 0.0
        lexical = self._lexical.matrix @ self._lexical.matrix.T
        sims = (
            self._w * (self._vectors @ self._vectors.T) + (1 - self._w) * lexical
            if self._vectors is not None
            else lexical
        )
        features, right = [], []
        for i in range(n):
            row = sims[i].astype(np.float64).copy()
            row[i] = -np.inf
            scores = self._class_scores(row.astype(np.float32))
            order = np.argsort(-scores)
            best, second = scores[order[0]], scores[order[1]] if len(order) > 1 else 0.0
            features.append((best, best - second))
            right.append(1.0 if self.classes[order[0]] == self.labels[i] else 0.0)
        labels = np.array(right)
        self.calibrator.fit(np.array(features), labels)
        return float(labels.mean())

    # -- classification ---------------------------------------------------------------

    def ranked(self, text: str) -> list[tuple[str, float]]:
        """Every class with its fused score, best first."""
        scores = self._class_scores(self._similarity(text))
        order = np.argsort(-scores)
        return [(self.classes[i], float(scores[i])) for i in order]

    def classify(self, text: str) -> Classification:
        """The nearest-example answer: best class, calibrated confidence, runners-up."""
        start = time.perf_counter()
        ranked = self.ranked(text)
        best, score = ranked[0]
        second = ranked[1][1] if len(ranked) > 1 else 0.0
        confidence = self.calibrator.probability(score, score - second)
        return Classification(
            best,
            confidence,
            _share(ranked[1:4], 1 - confidence),
            "knn",
            (time.perf_counter() - start) * 1000,
        )


def _share(ranked: Sequence[tuple[str, float]], mass: float) -> list[tuple[str, float]]:
    """Runners-up with ``mass`` split by a softmax of their scores (sharp: tau 0.05)."""
    if not ranked:
        return []
    scores = np.array([s for _, s in ranked])
    weights = np.exp((scores - scores.max()) / 0.05)
    weights = weights / weights.sum() * mass
    return [(name, float(p)) for (name, _), p in zip(ranked, weights, strict=True)]
