"""Learners by name: a read-only registry and the factory the service and CLI use."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from luodi.apps.risk.learners.base import Learner
from luodi.apps.risk.learners.gbdt import GBDTLearner
from luodi.apps.risk.learners.incontext import InContextLearner
from luodi.apps.risk.learners.logreg import LogRegLearner
from luodi.apps.risk.learners.probe import ProbeLearner
from luodi.config.risk import RiskSettings
from luodi.errors import InvalidRequestError

__all__ = ["LEARNERS", "build_learner"]

LEARNERS: Mapping[str, Callable[[RiskSettings], Learner]] = MappingProxyType(
    {
        "incontext": InContextLearner,
        "probe": ProbeLearner,
        "logreg": LogRegLearner,
        "gbdt": GBDTLearner,
    }
)
"""Learner name → constructor."""


def build_learner(
    name: str,
    settings: RiskSettings,
    registry: Mapping[str, Callable[[RiskSettings], Learner]] = LEARNERS,
) -> Learner:
    """A fresh learner called ``name``.

    Raises:
        InvalidRequestError: no learner has that name (the message lists them).
    """
    factory = registry.get(name)
    if factory is None:
        raise InvalidRequestError(
            f"unknown learner {name!r}; known: {', '.join(registry)}", param="learner"
        )
    return factory(settings)
