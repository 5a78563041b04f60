"""The one interface every learner implements: fit on labelled cases, score cases."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from luodi.apps.risk.case import Case, LabelledCase, Reason
from luodi.apps.risk.clients import ChatModel, TextEmbeddings
from luodi.apps.risk.features import feature_table
from luodi.apps.risk.narrative import Language, render
from luodi.config.risk import RiskSettings
from luodi.errors import InvalidRequestError, ServiceUnavailableError

__all__ = [
    "Decision",
    "Learner",
    "Tools",
    "Verdict",
    "check_two_classes",
    "contribution_reasons",
    "decide",
]

Decision = Literal["approve", "review", "reject"]


@dataclass
class Tools:
    """The models a learner may call for this fit or score (the LLM learners need them)."""

    chat: ChatModel | None = None
    embeddings: TextEmbeddings | None = None

    def need_chat(self, learner: str) -> ChatModel:
        if self.chat is None:
            raise ServiceUnavailableError(
                f"the {learner} learner needs a chat model; none is served"
            )
        return self.chat

    def need_embeddings(self, learner: str) -> TextEmbeddings:
        if self.embeddings is None:
            raise ServiceUnavailableError(
                f"the {learner} learner needs an embedding model; none is served"
            )
        return self.embeddings


@dataclass
class Verdict:
    """One learner's answer for one case, before it is shaped and audited."""

    probability: float
    decision: Decision
    reasons: list[Reason]
    dropped_reasons: int = 0
    similar_cases: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    """Learner-specific facts for the audit (the model's own score, the decision distribution)."""

    @property
    def risk_score(self) -> int:
        """The calibrated probability on 0-100."""
        return max(0, min(100, round(self.probability * 100)))


def decide(probability: float, settings: RiskSettings) -> Decision:
    """The decision the thresholds give ``probability``."""
    if probability >= settings.reject_threshold:
        return "reject"
    if probability >= settings.review_threshold:
        return "review"
    return "approve"


def check_two_classes(cases: Sequence[LabelledCase]) -> None:
    """Refuse a training set without both labels (a learner needs fraud and non-fraud).

    Raises:
        InvalidRequestError: naming the one label present and how many cases have it.
    """
    labels = {c.label for c in cases}
    if not cases:
        raise InvalidRequestError("no labelled cases to train on", param="cases")
    if len(labels) < 2:
        (only,) = labels
        raise InvalidRequestError(
            f"all {len(cases)} labelled cases have label {only}: training needs both "
            "fraud (1) and non-fraud (0) examples",
            param="cases",
        )


def contribution_reasons(
    case: Case, contributions: dict[str, float], lang: Language, top: int = 3
) -> list[Reason]:
    """The features that pushed the score up most, as reasons quoting the narrative line."""
    lines = dict(render(case, lang).lines)
    table = feature_table(case)
    ranked = sorted(
        ((fid, c) for fid, c in contributions.items() if c > 0 and fid in table),
        key=lambda kv: (-kv[1], kv[0]),
    )
    return [
        Reason(feature=fid, evidence=f"{lines.get(fid, f'{fid}: {table[fid]}')} (+{c:.2f})")
        for fid, c in ranked[:top]
    ]


def sigmoid(z: float) -> float:
    """The logistic function, safe for large ``|z|``."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class Learner(ABC):
    """A fraud learner: trained from labelled cases, then scores cases.

    Learners are pickled whole when trained (``RiskStore``); the tools they call are
    handed in per call and never kept.
    """

    name: ClassVar[str]
    uses_chat: ClassVar[bool] = False
    uses_embeddings: ClassVar[bool] = False

    def __init__(self, settings: RiskSettings) -> None:
        self.settings = settings
        self.trained_on = 0

    @abstractmethod
    async def fit(self, cases: Sequence[LabelledCase], tools: Tools) -> None:
        """Train on ``cases`` (both labels present: ``check_two_classes``)."""

    @abstractmethod
    async def score(
        self, cases: Sequence[Case], tools: Tools, *, explain: bool = True
    ) -> list[Verdict]:
        """One verdict per case, in order; ``explain=False`` may skip costly reasons."""

    def importances(self, case: Case) -> dict[str, float]:
        """Per-feature contributions to this case's score (the classical learners')."""
        return {}
