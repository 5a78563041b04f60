"""Fraud scoring: cases rendered as narratives, learners from few labels, audited decisions.

``RiskService`` is what the API routes (``routes.py``) and ``luodi risk`` use; the case
contract is in ``case.py``, the narrative renderer in ``narrative.py`` (docs/risk.md).
"""

from luodi.apps.risk.case import (
    Case,
    Event,
    LabelledCase,
    Reason,
    ScoreAnswer,
    parse_cases,
    parse_labelled,
)
from luodi.apps.risk.narrative import Narrative, render
from luodi.apps.risk.service import Caller, RiskService

__all__ = [
    "Caller",
    "Case",
    "Event",
    "LabelledCase",
    "Narrative",
    "Reason",
    "RiskService",
    "ScoreAnswer",
    "parse_cases",
    "parse_labelled",
    "render",
]
