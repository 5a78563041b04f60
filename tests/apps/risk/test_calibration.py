"""Probabilities from decision-token log-probabilities, and their calibration."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from luodi.apps.risk.calibration import Calibrator, decision_distribution, risk_mass
from luodi.engine.types import TokenLogprob


def _tokens(*pieces: tuple[str, dict[str, float]]) -> list[TokenLogprob]:
    return [
        TokenLogprob(
            text, math.log(probs.get(text, 1e-9)), [(t, math.log(p)) for t, p in probs.items()]
        )
        for text, probs in pieces
    ]


def test_the_distribution_is_read_at_the_decision_token() -> None:
    text = '{"decision":"reject","risk_score":80,"reasons":[]}'
    tokens = _tokens(
        ('{"', {'{"': 1.0}),
        ("decision", {"decision": 1.0}),
        ('":"', {'":"': 1.0}),
        ("reject", {"reject": 0.6, "review": 0.3, "approve": 0.1}),
        ('","risk_score":80,"reasons":[]}', {'","risk_score":80,"reasons":[]}': 1.0}),
    )
    dist = decision_distribution(text, tokens)
    assert dist == pytest.approx({"approve": 0.1, "review": 0.3, "reject": 0.6})
    assert risk_mass(dist) == pytest.approx(0.75)


def test_a_shared_prefix_is_split_by_the_next_token() -> None:
    text = '{"decision": "review", "risk_score": 40}'
    tokens = _tokens(
        ('{"decision": "', {'{"decision": "': 1.0}),
        ("re", {"re": 0.8, "approve": 0.2}),
        ("view", {"view": 0.75, "ject": 0.25}),
        ('", "risk_score": 40}', {'", "risk_score": 40}': 1.0}),
    )
    dist = decision_distribution(text, tokens)
    assert dist == pytest.approx({"approve": 0.2, "review": 0.6, "reject": 0.2})


def test_an_answer_without_a_decision_has_no_distribution() -> None:
    assert decision_distribution('{"risk_score": 3}', _tokens(('{"risk_score": 3}', {}))) is None


def _grid() -> np.ndarray:
    return np.linspace(0.0, 1.0, 201)


@pytest.mark.parametrize("seed", range(5))
def test_calibration_is_monotone_in_the_raw_risk(seed: int) -> None:
    rnd = random.Random(seed)
    raw = [rnd.random() for _ in range(40)]
    labels = [int(rnd.random() < r) for r in raw]
    calibrate = Calibrator().fit(raw, labels)
    out = [calibrate(x) for x in _grid()]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(out))
    assert all(0.0 <= p <= 1.0 for p in out)


def test_a_model_whose_numbers_run_backwards_gets_a_flat_map_not_an_inverted_one() -> None:
    raw = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9] * 3
    labels = [1, 1, 1, 0, 0, 0] * 3
    calibrate = Calibrator().fit(raw, labels)
    out = [calibrate(x) for x in _grid()]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(out))


def test_risk_mass_grows_as_mass_moves_towards_reject() -> None:
    masses = [
        risk_mass({"approve": 1 - p, "review": 0.0, "reject": p}) for p in np.linspace(0, 1, 11)
    ]
    assert masses == sorted(masses)


def test_an_unfitted_calibrator_is_the_identity() -> None:
    assert Calibrator()(0.37) == pytest.approx(0.37)
