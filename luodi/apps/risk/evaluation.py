"""Evaluating learners on labelled cases: AUC, PR-AUC, recall at a review rate, Brier.

``recall_at_review`` answers the operating question a risk team asks: if analysts can
review a fixed share of cases (5%), the highest-scored ones, what share of the fraud
do they see? The result is JSON the 3C report reads (``luodi eval``'s
``results_file`` scenario): ``name``, ``value`` (the first learner's AUC), ``n`` at the
top, every learner's figures under ``learners``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from luodi.apps.risk.case import LabelledCase
from luodi.apps.risk.learners import Learner, Tools

__all__ = ["evaluate_learners", "metrics", "recall_at_review"]


def recall_at_review(labels: Sequence[int], scores: Sequence[float], rate: float) -> float:
    """Share of positives among the ``rate`` highest-scored cases (ties by order)."""
    y, s = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    if positives == 0:
        return math.nan
    top = max(1, math.ceil(rate * len(y)))
    order = np.argsort(-s, kind="stable")[:top]
    return float(y[order].sum() / positives)


def metrics(labels: Sequence[int], scores: Sequence[float], rate: float) -> dict[str, float]:
    """AUC, PR-AUC (average precision), recall at ``rate`` review, Brier score."""
    y = np.asarray(labels)
    s = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    both = 0 < y.sum() < len(y)
    return {
        "auc": round(float(roc_auc_score(y, s)), 4) if both else math.nan,
        "pr_auc": round(float(average_precision_score(y, s)), 4) if both else math.nan,
        "recall_at_review": round(recall_at_review(y.tolist(), s.tolist(), rate), 4),
        "brier": round(float(brier_score_loss(y, s)), 4),
    }


async def evaluate_learners(
    learners: Sequence[Learner],
    cases: Sequence[LabelledCase],
    tools: Tools,
    *,
    review_rate: float = 0.05,
    batch: int = 16,
    explain: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """Score ``cases`` with each learner and compare; ``progress(learner, n_done)``."""
    labels = [c.label for c in cases]
    out: dict[str, Any] = {}
    for learner in learners:
        scores: list[float] = []
        started = time.perf_counter()
        for start in range(0, len(cases), batch):
            chunk = [c.unlabelled() for c in cases[start : start + batch]]
            verdicts = await learner.score(chunk, tools, explain=explain)
            scores.extend(v.probability for v in verdicts)
            if progress is not None:
                progress(learner.name, len(chunk))
        seconds = time.perf_counter() - started
        out[learner.name] = {
            **metrics(labels, scores, review_rate),
            "n": len(cases),
            "latency_ms_per_case": round(seconds * 1000 / max(1, len(cases)), 2),
        }
    first = out[learners[0].name] if learners else {}
    return {
        "name": f"risk AUC ({learners[0].name})" if learners else "risk AUC",
        "value": first.get("auc", math.nan),
        "n": len(cases),
        "higher_is_better": True,
        "unit": "AUC",
        "source": "luodi risk eval",
        "positives": int(sum(labels)),
        "review_rate": review_rate,
        "learners": out,
    }
