"""Probabilities from token probabilities: the decision's distribution, then calibration.

The in-context learner's probability comes from what the model would have answered,
not from the number it writes: at the token where the ``decision`` value starts, the
log-probabilities of ``approve``, ``review`` and ``reject`` (restricted to those three,
as the JSON schema restricts the answer) give a distribution; its risk mass
``P(reject) + P(review) / 2`` is then calibrated on labelled cases. Every map here is
non-decreasing in the risk mass, so a riskier answer never gets a lower probability.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from luodi.engine.types import TokenLogprob

__all__ = ["DECISIONS", "Calibrator", "decision_distribution", "risk_mass"]

DECISIONS: tuple[str, str, str] = ("approve", "review", "reject")
_VALUE = re.compile(r'"decision"\s*:\s*"')
_EPS = 1e-4


def _matches(rest: str) -> list[str]:
    """Decisions a token's text (after the value's opening quote) could begin."""
    rest = rest.split('"', 1)[0] if '"' in rest else rest
    if not rest:
        return []
    return [d for d in DECISIONS if d.startswith(rest) or rest.startswith(d)]


def _conditional(entry: TokenLogprob, among: list[str], lead: str) -> dict[str, float]:
    """P(decision | value so far is ``lead``) from the next token's alternatives."""
    mass = dict.fromkeys(among, 0.0)
    for token, logprob in [(entry.token, entry.logprob), *entry.top]:
        for d in _matches(lead + token):
            if d in mass:
                mass[d] = max(mass[d], math.exp(logprob))
    total = sum(mass.values())
    if total <= 0:
        return dict.fromkeys(among, 1.0 / len(among))
    return {d: m / total for d, m in mass.items()}


def decision_distribution(text: str, tokens: Sequence[TokenLogprob]) -> dict[str, float] | None:
    """P(approve, review, reject) at the decision value, or None if it is not in ``text``.

    ``tokens`` are the answer's tokens with their top alternatives (``top_logprobs``).
    A token that two decisions share (``re``) is split by the next position's
    alternatives where the model went on from it, else evenly.
    """
    found = _VALUE.search(text)
    if found is None:
        return None
    offset, start = found.end(), 0
    for index in range(len(tokens)):  # the index found is used after the loop
        entry = tokens[index]
        end = start + len(entry.token)
        if end > offset:
            break
        start = end
    else:
        return None
    skip = offset - start  # characters of this token before the value starts
    chosen = entry.token[skip:]
    mass = dict.fromkeys(DECISIONS, 0.0)
    seen: set[str] = set()
    for token, logprob in [(entry.token, entry.logprob), *entry.top]:
        if token in seen or token[:skip] != entry.token[:skip]:
            continue
        seen.add(token)
        rest = token[skip:]
        matches = _matches(rest)
        if not matches:
            continue
        p = math.exp(logprob)
        if len(matches) == 1:
            mass[matches[0]] += p
            continue
        if rest == chosen and index + 1 < len(tokens):
            split = _conditional(tokens[index + 1], matches, rest)
        else:
            split = dict.fromkeys(matches, 1.0 / len(matches))
        for d, share in split.items():
            mass[d] += p * share
    total = sum(mass.values())
    if total <= 0:
        return None
    return {d: m / total for d, m in mass.items()}


def risk_mass(distribution: dict[str, float]) -> float:
    """``P(reject) + P(review) / 2``: one number, non-decreasing in every riskier answer."""
    return distribution.get("reject", 0.0) + 0.5 * distribution.get("review", 0.0)


def _logit(x: NDArray[np.float64]) -> NDArray[np.float64]:
    clipped = np.clip(x, _EPS, 1 - _EPS)
    out: NDArray[np.float64] = np.log(clipped / (1 - clipped))
    return out


@dataclass
class Calibrator:
    """A non-decreasing map from a raw risk mass to a probability.

    Platt scaling (a logistic fit on the raw mass's logit) when it comes out
    increasing; isotonic regression when it does not (a model whose raw numbers run
    backwards gets a flat map, not an inverted one); identity until fitted.
    """

    slope: float = 1.0
    intercept: float = 0.0
    isotonic: IsotonicRegression | None = None
    fitted_on: int = 0

    def fit(self, raw: Sequence[float], labels: Sequence[int]) -> Calibrator:
        """Fit on raw masses of labelled cases; needs both labels, else stays identity."""
        x, y = np.asarray(raw, dtype=np.float64), np.asarray(labels, dtype=np.int64)
        if len(set(y.tolist())) < 2:
            return self
        platt = LogisticRegression(C=1.0).fit(_logit(x).reshape(-1, 1), y)
        slope = float(platt.coef_[0][0])
        if slope > 0:
            self.slope, self.intercept, self.isotonic = slope, float(platt.intercept_[0]), None
        else:
            self.isotonic = IsotonicRegression(
                y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip"
            ).fit(x, y)
        self.fitted_on = len(y)
        return self

    def __call__(self, raw: float) -> float:
        """The calibrated probability of a raw mass in [0, 1]."""
        if self.isotonic is not None:
            return float(self.isotonic.predict(np.asarray([raw]))[0])
        if self.fitted_on == 0:
            return float(min(1.0, max(0.0, raw)))
        z = self.slope * float(_logit(np.asarray([raw]))[0]) + self.intercept
        return 1.0 / (1.0 + math.exp(-z))
