"""The case contract other tools write: a customer or account, its features and events.

A case is ``{"id": str, "features": {name: number | string}, "events": [{"ts":
ISO-8601, "type": str, "amount": number, ...}]}``; a training item adds ``"label": 0 |
1``. A malformed case is a 400 whose ``param`` names the field (``cases[3].events[0].ts``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from luodi.errors import InvalidRequestError

__all__ = [
    "Case",
    "Event",
    "LabelledCase",
    "Reason",
    "ScoreAnswer",
    "inputs_sha256",
    "parse_cases",
    "parse_labelled",
]

FeatureValue = float | int | str | bool
_M = TypeVar("_M", bound=BaseModel)


class Event(BaseModel):
    """One event of a case's sequence; fields beyond the named ones are kept, unused."""

    model_config = ConfigDict(extra="allow", frozen=True)

    ts: datetime
    """When it happened (ISO-8601; a time without a zone is read as UTC)."""
    type: str = Field(min_length=1)
    amount: float = Field(default=0.0, allow_inf_nan=False)
    currency: str | None = None
    channel: str | None = None
    device: str | None = None
    location: str | None = None
    counterparty: str | None = None

    @field_validator("ts")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Case(BaseModel):
    """A customer or account to score: tabular features and an event sequence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=256)
    features: dict[str, FeatureValue] = Field(default_factory=dict)
    events: list[Event] = Field(default_factory=list)

    @field_validator("features")
    @classmethod
    def _names(cls, value: dict[str, FeatureValue]) -> dict[str, FeatureValue]:
        for name in value:
            if not name or name.startswith("events.") or any(c in name for c in "[]\n"):
                raise ValueError(
                    f"feature name {name!r} is empty, uses the reserved 'events.' prefix "
                    "or contains brackets or newlines"
                )
            number = value[name]
            if isinstance(number, float) and not math.isfinite(number):
                raise ValueError(f"feature {name!r} is {number}: numbers must be finite")
        return value

    def canonical(self) -> str:
        """The case as canonical JSON (sorted keys), what its inputs hash is taken of."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)


class LabelledCase(Case):
    """A training item: a case and whether it was fraud (1) or not (0)."""

    label: Literal[0, 1]

    def unlabelled(self) -> Case:
        """The same case without its label."""
        return Case(id=self.id, features=self.features, events=self.events)


class Reason(BaseModel):
    """One reason of a decision: the feature id it cites and the evidence for it."""

    feature: str
    evidence: str


class ScoreAnswer(BaseModel):
    """What ``score`` answers for one case (the JSON contract)."""

    id: str
    risk_score: int = Field(ge=0, le=100)
    probability: float = Field(ge=0.0, le=1.0)
    decision: Literal["approve", "review", "reject"]
    reasons: list[Reason]
    learner: str
    decision_id: str | None = None
    similar_cases: list[str] = Field(default_factory=list)
    dropped_reasons: int = 0
    labelled_set: str | None = None


def _where(prefix: str, loc: Sequence[int | str]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


def _parse(model: type[_M], items: Sequence[Any], prefix: str) -> list[_M]:
    parsed: list[_M] = []
    for index, item in enumerate(items):
        where = f"{prefix}[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidRequestError(f"{where} must be an object, a case", param=where)
        try:
            parsed.append(model.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = _where(where, [p for p in first["loc"] if p != "__root__"])
            raise InvalidRequestError(f"{field}: {first['msg']}", param=field) from None
    ids = [c.id for c in parsed]  # type: ignore[attr-defined]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InvalidRequestError(f"{prefix}: case id {dup!r} appears twice", param=prefix)
    return parsed


def parse_cases(items: Sequence[Any], prefix: str = "cases") -> list[Case]:
    """Validate raw cases; a malformed one raises InvalidRequestError naming the field."""
    return _parse(Case, items, prefix)


def parse_labelled(items: Sequence[Any], prefix: str = "cases") -> list[LabelledCase]:
    """Validate labelled cases (``label`` 0 or 1) the same way."""
    return _parse(LabelledCase, items, prefix)


def inputs_sha256(case: Case) -> str:
    """The SHA-256 of the case's canonical JSON: the audit record's inputs hash."""
    return hashlib.sha256(case.canonical().encode("utf-8")).hexdigest()
