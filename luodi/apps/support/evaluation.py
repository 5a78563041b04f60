"""Scoring an intent recognizer on a labelled set: accuracy, macro-F1, out-of-scope, calibration.

A labelled set is JSONL, one ``{"text": ..., "intent": ...}`` per line; ``out_of_scope``
is a label like any other. The report is plain data (``IntentReport.wire()``), printed
by ``luodi support eval`` and written as JSON for other reports to read.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from luodi.apps.support.assistant import OUT_OF_SCOPE
from luodi.apps.support.classifier import Classification
from luodi.errors import InvalidRequestError

__all__ = ["IntentReport", "LabelledUtterance", "read_labelled", "score"]


@dataclass(frozen=True, slots=True)
class LabelledUtterance:
    """One utterance and the intent it means."""

    text: str
    intent: str


def read_labelled(path: Path) -> list[LabelledUtterance]:
    """Read a JSONL labelled set; a bad line is an error naming it."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidRequestError(f"{path}: cannot read: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            rows.append(LabelledUtterance(str(item["text"]), str(item["intent"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidRequestError(
                f'{path}:{number}: expected {{"text": ..., "intent": ...}}'
            ) from exc
    if not rows:
        raise InvalidRequestError(f"{path}: no labelled utterances")
    return rows


@dataclass
class IntentReport:
    """What an evaluation found."""

    total: int
    accuracy: float
    macro_f1: float
    oos_precision: float
    oos_recall: float
    per_intent: dict[str, dict[str, float]]
    confusion: dict[str, dict[str, int]]
    """gold intent -> predicted intent -> count."""
    paths: dict[str, dict[str, float]]
    """per path (knn, llm): share of utterances, accuracy, mean confidence."""
    calibration_error: float
    """Expected calibration error over 10 confidence bins (0 is perfectly calibrated)."""
    latency_ms: dict[str, float] = field(default_factory=dict)
    mistakes: list[dict[str, Any]] = field(default_factory=list)
    """Each misread utterance: its text, gold intent, the intent said, confidence, path;
    what an operator reads to write the examples an intent is missing."""
    meta: dict[str, Any] = field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "out_of_scope": {"precision": self.oos_precision, "recall": self.oos_recall},
            "per_intent": self.per_intent,
            "paths": self.paths,
            "calibration_error": self.calibration_error,
            "latency_ms": self.latency_ms,
            "confusion": self.confusion,
            "mistakes": self.mistakes,
            **self.meta,
        }


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def score(gold: Sequence[LabelledUtterance], predicted: Sequence[Classification]) -> IntentReport:
    """Compare predictions with the gold labels, utterance by utterance."""
    pairs = list(zip((g.intent for g in gold), predicted, strict=True))
    labels = sorted({g for g, _ in pairs} | {p.intent for _, p in pairs})
    confusion: dict[str, dict[str, int]] = {g: {} for g in labels}
    for g, p in pairs:
        confusion[g][p.intent] = confusion[g].get(p.intent, 0) + 1
    per_intent: dict[str, dict[str, float]] = {}
    for label in labels:
        tp = confusion.get(label, {}).get(label, 0)
        fp = sum(row.get(label, 0) for g, row in confusion.items() if g != label)
        fn = sum(n for p, n in confusion.get(label, {}).items() if p != label)
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        f1 = _ratio(2 * precision * recall, precision + recall)
        per_intent[label] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": tp + fn,
        }
    gold_labels = [label for label in labels if per_intent[label]["support"] > 0]
    right = [g == p.intent for g, p in pairs]
    paths: dict[str, dict[str, float]] = {}
    for path, count in Counter(p.path for _, p in pairs).items():
        chosen = [(ok, p) for ok, (_, p) in zip(right, pairs, strict=True) if p.path == path]
        paths[path] = {
            "share": round(count / len(pairs), 4),
            "accuracy": round(sum(ok for ok, _ in chosen) / count, 4),
            "mean_confidence": round(sum(p.confidence for _, p in chosen) / count, 4),
        }
    # Expected calibration error: |accuracy - confidence| per bin, weighted by its size.
    bins: dict[int, list[tuple[bool, float]]] = {}
    for ok, (_, p) in zip(right, pairs, strict=True):
        bins.setdefault(min(9, int(p.confidence * 10)), []).append((ok, p.confidence))
    ece = sum(
        len(b) / len(pairs) * abs(sum(ok for ok, _ in b) / len(b) - sum(c for _, c in b) / len(b))
        for b in bins.values()
    )
    oos = per_intent.get(OUT_OF_SCOPE, {"precision": 0.0, "recall": 0.0})
    latencies = [p.latency_ms for _, p in pairs]
    mistakes = [
        {
            "text": g.text,
            "intent": g.intent,
            "predicted": p.intent,
            "confidence": round(p.confidence, 4),
            "path": p.path,
        }
        for g, p in zip(gold, predicted, strict=True)
        if g.intent != p.intent
    ]
    return IntentReport(
        total=len(pairs),
        accuracy=round(sum(right) / len(pairs), 4),
        macro_f1=round(sum(per_intent[g]["f1"] for g in gold_labels) / len(gold_labels), 4),
        oos_precision=oos["precision"],
        oos_recall=oos["recall"],
        per_intent=per_intent,
        confusion=confusion,
        paths=paths,
        calibration_error=round(ece, 4),
        latency_ms={
            "p50": round(_percentile(latencies, 0.5), 2),
            "p95": round(_percentile(latencies, 0.95), 2),
        },
        mistakes=mistakes,
    )
