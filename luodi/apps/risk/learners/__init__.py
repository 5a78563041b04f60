"""Learners behind one interface: in-context, probe, logistic regression, boosting."""

from luodi.apps.risk.learners.base import Learner, Tools, Verdict, check_two_classes, decide
from luodi.apps.risk.learners.registry import LEARNERS, build_learner

__all__ = [
    "LEARNERS",
    "Learner",
    "Tools",
    "Verdict",
    "build_learner",
    "check_two_classes",
    "decide",
]
