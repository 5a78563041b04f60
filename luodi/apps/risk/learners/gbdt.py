"""Gradient boosting on the tabular features: the stronger classical baseline."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier

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

__all__ = ["GBDTLearner"]


class GBDTLearner(Learner):
    """Shallow boosted trees (seeded); reasons by ablation: each feature set to its mean."""

    name = "gbdt"

    space: FeatureSpace
    model: GradientBoostingClassifier

    async def fit(self, cases: Sequence[LabelledCase], tools: Tools) -> None:
        check_two_classes(cases)
        self.space = FeatureSpace.fit(cases)
        x, y = self.space.matrix(cases), np.asarray([c.label for c in cases])
        model = GradientBoostingClassifier(
            n_estimators=150, max_depth=2, learning_rate=0.1, subsample=0.8, random_state=0
        )
        self.model = await asyncio.to_thread(model.fit, x, y)
        self.trained_on = len(cases)

    def importances(self, case: Case) -> dict[str, float]:
        row = self.space.matrix([case])[0]
        owners = sorted(set(self.space.owners))
        ablated = np.tile(row, (len(owners), 1))
        for i, owner in enumerate(owners):
            cols = [j for j, o in enumerate(self.space.owners) if o == owner]
            ablated[i, cols] = 0.0  # the training mean, standardised
        base = float(self.model.decision_function(row.reshape(1, -1))[0])
        deltas = base - self.model.decision_function(ablated)
        return {o: float(d) for o, d in zip(owners, deltas.tolist(), strict=True)}

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
