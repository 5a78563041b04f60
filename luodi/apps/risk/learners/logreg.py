"""Logistic regression on the tabular features: the baseline every risk team runs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression

from luodi.apps.risk.case import Case, LabelledCase
from luodi.apps.risk.learners.base import (
    Learner,
    Tools,
    Verdict,
    check_two_classes,
    contribution_reasons,
    decide,
)
from luodi.apps.risk.space import FeatureSpace

__all__ = ["LogRegLearner"]


class LogRegLearner(Learner):
    """Standardised features, L2-regularised logistic regression; reasons: coef × value."""

    name = "logreg"

    space: FeatureSpace
    model: LogisticRegression

    async def fit(self, cases: Sequence[LabelledCase], tools: Tools) -> None:
        check_two_classes(cases)
        self.space = FeatureSpace.fit(cases)
        x, y = self.space.matrix(cases), np.asarray([c.label for c in cases])
        self.model = await asyncio.to_thread(LogisticRegression(C=1.0, max_iter=2000).fit, x, y)
        self.trained_on = len(cases)

    def importances(self, case: Case) -> dict[str, float]:
        row = self.space.matrix([case])[0]
        return self.space.by_feature(row * self.model.coef_[0])

    async def score(
        self, cases: Sequence[Case], tools: Tools, *, explain: bool = True
    ) -> list[Verdict]:
        if not cases:
            return []
        p = self.model.predict_proba(self.space.matrix(cases))[:, 1]
        verdicts = []
        for case, prob in zip(cases, p.tolist(), strict=True):
            reasons = contribution_reasons(case, self.importances(case), self.settings.language)
            verdicts.append(Verdict(float(prob), decide(float(prob), self.settings), reasons))
        return verdicts
