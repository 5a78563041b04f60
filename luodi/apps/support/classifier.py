"""The first layer of intent recognition: a linear classifier learnt from the examples.

Every configured example (and each intent's description) is a row of fused features:
the configured embedding model's vector, weighted against a TF-IDF vector over a
Chinese-aware lexical index (``lexical.py``). A multinomial logistic regression learns
the intents from them; out-of-scope examples, when the file has some, are one more class.

What is not assumed is learnt from the assistant's own examples by cross-validation
(stratified folds, each fold classified by a model fitted on the others):

- whether Chinese utterances embed better as their English gloss (``glossary.py``: the
  bundled embedder knows English only) or as written (a multilingual embedder);
- the embedding's weight against the lexical features;
- whether the assistant's own language model helps, and how deep: the mean hidden state
  of one of its middle layers (a quarter to two thirds of its depth; ``HiddenStates``),
  standardised on the examples, is a third block of features. Gemma-3-270M is
  multilingual where the bundled embedder is not, and its layer 6 of 18 lifts Chinese
  utterances most;
- the confidence: a logistic model maps (probability of the best intent, margin over the
  runner-up) to the probability of being right, fitted on the held-out folds' answers.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from luodi.apps.support.assistant import OUT_OF_SCOPE, Assistant
from luodi.apps.support.glossary import Glossary
from luodi.apps.support.lexical import LexicalIndex, language_of
from luodi.embedding import Embedder

__all__ = ["Calibrator", "Classification", "FeatureChoice", "IntentModel", "LayerStates"]

Path = Literal["knn", "llm"]

_FOLDS = 4
_WEIGHTS = (0.5, 0.6, 2 / 3)
"""Embedding weights cross-validation chooses among (embedding : lexical 1:1, 1.5:1, 2:1)."""
_DEFAULT_WEIGHT = 0.6
_C = 100.0
"""Inverse L2 strength: the examples are few and clean, a light penalty fits them best."""
_LAYER_WEIGHTS = (1.5, 2.0, 3.0)
"""Weights of the model's hidden-state block (unit rows) cross-validation chooses among."""
_IDENTIFIER = re.compile(r"\d{5,}")
"""Order, phone and card numbers: one token a digit in Gemma's vocabulary, so a 16-digit
order number would outweigh the words around it in a mean of token states."""


def _for_states(text: str) -> str:
    """``text`` as the model's states read it: long numbers are one placeholder digit."""
    return _IDENTIFIER.sub("0", text)


class LayerStates(Protocol):
    """A language model's mean hidden state per layer (``luodi.engine.llamacpp.HiddenStates``)."""

    @property
    def n_layer(self) -> int: ...

    def pooled(
        self, texts: Sequence[str], layers: Sequence[int]
    ) -> dict[int, NDArray[np.float32]]: ...


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


@dataclass(frozen=True)
class FeatureChoice:
    """How utterances become features: what cross-validation chose, and its accuracy."""

    gloss: bool
    """Chinese is embedded as its English gloss."""
    embedding_weight: float
    cv_accuracy: float = 0.0
    layer: int | None = None
    """The language model's layer whose mean state is a feature block; None: none."""
    layer_weight: float = 0.0

    def wire(self) -> dict[str, Any]:
        """The ``features`` object of the evaluation report."""
        return {
            "gloss": self.gloss,
            "embedding_weight": round(self.embedding_weight, 4),
            "model_layer": self.layer,
            "model_layer_weight": self.layer_weight,
            "cv_accuracy": round(self.cv_accuracy, 4),
        }


class IntentModel:
    """One assistant's examples, learnt for classification.

    Args:
        assistant: the intents and their examples.
        embedder: the configured embedding model; None: lexical features only.
        embedding_weight: the embedding's share of the features; None: chosen by
            cross-validation among 0.5, 0.6 and 0.67.
        gloss: embed Chinese as its English gloss; None: chosen by cross-validation.
        glossary: the Chinese-English dictionary, loaded only if a gloss is tried.
        states: the assistant's language model, read for hidden-state features; None:
            none are tried.
    """

    def __init__(
        self,
        assistant: Assistant,
        embedder: Embedder | None,
        *,
        embedding_weight: float | None = None,
        gloss: bool | None = None,
        glossary: Callable[[], Glossary] | None = None,
        states: LayerStates | None = None,
    ) -> None:
        self.assistant = assistant
        self._embedder = embedder
        self._states = states
        self._layers: dict[int, tuple[NDArray[np.float32], NDArray[np.float32]]] = {}
        self._layer_rows: dict[int, NDArray[np.float32]] = {}
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
        self._y = np.array([self.classes.index(label) for label in labels])
        self._lexical = LexicalIndex(texts)
        chinese = any(language_of(t) == "zh" for t in texts)
        glosses = [False] if embedder is None or not chinese or gloss is False else [True]
        if gloss is None and len(glosses) == 1 and glosses[0]:
            glosses = [True, False]
        self._glossary = glossary() if glossary is not None and True in glosses else None
        if self._glossary is None:
            glosses = [False]
        weights = [embedding_weight] if embedding_weight is not None else list(_WEIGHTS)
        if embedder is None:
            weights = [0.0]
        self._vectors = {g: self._embed(texts, g) for g in glosses}
        self.choice, self.calibrator = self._choose(
            [FeatureChoice(g, w) for g in glosses for w in weights]
        )
        if states is not None and self.choice.cv_accuracy > 0:
            self._read_layers(states)
            base = self.choice
            self.choice, self.calibrator = self._choose(
                [base]
                + [
                    FeatureChoice(base.gloss, base.embedding_weight, layer=layer, layer_weight=lw)
                    for layer in self._layers
                    for lw in _LAYER_WEIGHTS
                ]
            )
        self._model = self._fit(self._features_of(texts, self.choice), self._y)

    # -- features ---------------------------------------------------------------------

    def _embed(self, texts: Sequence[str], gloss: bool) -> NDArray[np.float32] | None:
        if self._embedder is None:
            return None
        if gloss and self._glossary is not None:
            glossary = self._glossary
            texts = [glossary.gloss(t) if language_of(t) == "zh" else t for t in texts]
        return self._embedder.embed(texts).astype(np.float32)

    def _stack(
        self, vectors: NDArray[np.float32] | None, lexical: NDArray[np.float32], weight: float
    ) -> NDArray[np.float64]:
        if vectors is None or weight <= 0:
            return lexical.astype(np.float64)
        if weight >= 1:
            return vectors.astype(np.float64)
        # Scaling one block against the other is what weighs them under one L2 penalty.
        return np.hstack([weight / (1 - weight) * vectors, lexical]).astype(np.float64)

    def _read_layers(self, states: LayerStates) -> None:
        """The examples' mean states at a quarter, a third, half and two thirds of the
        model's depth, and each layer's per-dimension mean and spread over them (to
        standardise by). A causal model's middle layers represent a sentence better than
        its last, which is shaped for the next token (and reading it would cost llama.cpp
        a vocabulary-wide output row per token)."""
        n = states.n_layer
        layers = sorted({n // 4, n // 3, n // 2, 2 * n // 3})
        for layer, rows in states.pooled([_for_states(t) for t in self.texts], layers).items():
            mean, spread = rows.mean(axis=0), rows.std(axis=0) + np.float32(1e-6)
            self._layers[layer] = (mean, spread)
            self._layer_rows[layer] = self._standardise(rows, layer)

    def _standardise(self, rows: NDArray[np.float32], layer: int) -> NDArray[np.float32]:
        # A causal model's states share a few huge dimensions; z-scores let every
        # dimension count, and unit rows keep the block's weight meaningful.
        mean, spread = self._layers[layer]
        z = (rows - mean) / spread
        norms = np.linalg.norm(z, axis=1, keepdims=True)
        return np.asarray(z / np.maximum(norms, np.float32(1e-12)), dtype=np.float32)

    def _features_of(self, texts: Sequence[str], choice: FeatureChoice) -> NDArray[np.float64]:
        if texts is self.texts:
            vectors = self._vectors[choice.gloss]
            lexical = self._lexical.matrix
        else:
            vectors = self._embed(texts, choice.gloss)
            lexical = np.stack([self._lexical.query_vector(t) for t in texts])
        x = self._stack(vectors, lexical, choice.embedding_weight)
        if choice.layer is None or self._states is None:
            return x
        if texts is self.texts:
            block = self._layer_rows[choice.layer]
        else:
            rows = self._states.pooled([_for_states(t) for t in texts], [choice.layer])[
                choice.layer
            ]
            block = self._standardise(rows, choice.layer)
        return np.hstack([x, choice.layer_weight * block.astype(np.float64)])

    # -- learning ---------------------------------------------------------------------

    @staticmethod
    def _fit(x: NDArray[np.float64], y: NDArray[np.int64]) -> LogisticRegression:
        # One BLAS thread: the fit is small, and threads busy-wait on a shared CPU.
        with threadpool_limits(1):
            return LogisticRegression(C=_C, max_iter=3000).fit(x, y)

    def _held_out(self, x: NDArray[np.float64], folds: int) -> NDArray[np.float64]:
        """Each example's class probabilities from a model fitted without its fold."""
        out = np.zeros((len(x), len(self.classes)))
        split = StratifiedKFold(folds, shuffle=True, random_state=0)
        for train, test in split.split(x, self._y):
            model = self._fit(x[train], self._y[train])
            with threadpool_limits(1):
                out[np.ix_(test, model.classes_)] = model.predict_proba(x[test])
        return out

    def _choose(self, choices: list[FeatureChoice]) -> tuple[FeatureChoice, Calibrator]:
        """The feature choice with the best held-out accuracy (the first of equals), and
        the calibrator fitted on its held-out answers."""
        smallest = int(np.bincount(self._y).min()) if len(self._y) else 0
        folds = min(_FOLDS, smallest)
        if folds < 2 or len(self.classes) < 2:  # too few examples to hold any out
            # No evidence to choose by: the first gloss at its middle weight.
            first = [c for c in choices if c.gloss == choices[0].gloss]
            return first[min(1, len(first) - 1)], Calibrator()
        best: tuple[float, FeatureChoice, NDArray[np.float64]] | None = None
        for choice in choices:
            held = self._held_out(self._features_of(self.texts, choice), folds)
            accuracy = float((held.argmax(1) == self._y).mean())
            if best is None or accuracy > best[0] + 1e-9:
                best = (accuracy, choice, held)
        assert best is not None
        accuracy, choice, held = best
        ordered = np.sort(held, axis=1)
        features = np.stack([ordered[:, -1], ordered[:, -1] - ordered[:, -2]], axis=1)
        right = (held.argmax(1) == self._y).astype(np.float64)
        calibrator = Calibrator().fit(features, right)
        chosen = FeatureChoice(
            choice.gloss, choice.embedding_weight, accuracy, choice.layer, choice.layer_weight
        )
        return chosen, calibrator

    @property
    def cv_accuracy(self) -> float:
        """Held-out accuracy of the chosen features on the configured examples."""
        return self.choice.cv_accuracy

    # -- classification ---------------------------------------------------------------

    def ranked(self, text: str) -> list[tuple[str, float]]:
        """Every class with the classifier's probability, best first."""
        x = self._features_of([text], self.choice)
        with threadpool_limits(1):
            probabilities = self._model.predict_proba(x)[0]
        order = np.argsort(-probabilities)
        return [
            (self.classes[int(self._model.classes_[i])], float(probabilities[i])) for i in order
        ]

    def classify(self, text: str) -> Classification:
        """The first layer's answer: best class, calibrated confidence, runners-up."""
        return self.classify_ranked(text)[0]

    def classify_ranked(self, text: str) -> tuple[Classification, list[tuple[str, float]]]:
        """``classify``'s answer and the ranking behind it, from one pass over the text
        (its features cost an embedding and, with model features, a forward pass)."""
        start = time.perf_counter()
        ranked = self.ranked(text)
        best, p = ranked[0]
        second = ranked[1][1] if len(ranked) > 1 else 0.0
        confidence = self.calibrator.probability(p, p - second)
        answer = Classification(
            best,
            confidence,
            _share(ranked[1:4], 1 - confidence),
            "knn",
            (time.perf_counter() - start) * 1000,
        )
        return answer, ranked


def _share(ranked: Sequence[tuple[str, float]], mass: float) -> list[tuple[str, float]]:
    """Runners-up with ``mass`` split in proportion to their probabilities."""
    if not ranked:
        return []
    total = sum(p for _, p in ranked) or 1.0
    return [(name, mass * p / total) for name, p in ranked]
