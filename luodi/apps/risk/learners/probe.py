"""The probe: a logistic-regression head on the embeddings of the narratives.

A real few-shot learner: retraining after a new pattern is one embedding pass over
the new cases and a logistic fit in milliseconds. Its reasons come from ablation:
each narrative line left out in turn, re-embedded, and the lines whose absence lowers
the probability most are cited by their feature ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from luodi.apps.risk.case import Case, LabelledCase, Reason
from luodi.apps.risk.learners.base import Learner, Tools, Verdict, check_two_classes, decide
from luodi.apps.risk.narrative import render

__all__ = ["ProbeLearner"]


class ProbeLearner(Learner):
    """``LogisticRegression`` on L2-normalised narrative embeddings."""

    name = "probe"
    uses_embeddings = True

    model: LogisticRegression
    embedding_model: str = ""

    async def fit(self, cases: Sequence[LabelledCase], tools: Tools) -> None:
        check_two_classes(cases)
        embeddings = tools.need_embeddings(self.name)
        texts = [render(c, self.settings.language).text for c in cases]
        x = await embeddings.embed(texts)
        y = np.asarray([c.label for c in cases])
        model = LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced")
        self.model = await asyncio.to_thread(model.fit, x, y)
        self.embedding_model = embeddings.name
        self.trained_on = len(cases)

    async def score(
        self, cases: Sequence[Case], tools: Tools, *, explain: bool = True
    ) -> list[Verdict]:
        if not cases:
            return []
        embeddings = tools.need_embeddings(self.name)
        narratives = [render(c, self.settings.language) for c in cases]
        # One embedding pass for every case and every ablated copy of it.
        texts: list[str] = []
        spans: list[tuple[int, int]] = []
        for n in narratives:
            start = len(texts)
            texts.append(n.text)
            if explain:
                texts.extend(n.without(fid) for fid in n.feature_ids)
            spans.append((start, len(texts)))
        p = self.model.predict_proba(await embeddings.embed(texts))[:, 1]
        verdicts = []
        for n, (start, end) in zip(narratives, spans, strict=True):
            prob = float(p[start])
            lines = dict(n.lines)
            ablated = p[start + 1 : end] if explain else []
            drops = sorted(
                ((prob - float(q), fid) for fid, q in zip(n.feature_ids, ablated, strict=False)),
                key=lambda t: (-t[0], t[1]),
            )
            reasons = [
                Reason(feature=fid, evidence=f"{lines[fid]} (+{d:.2f})")
                for d, fid in drops[:3]
                if d > 0
            ]
            verdicts.append(Verdict(prob, decide(prob, self.settings), reasons))
        return verdicts
