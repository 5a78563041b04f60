"""Citation validation: a reason must cite a feature the case has."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from luodi.apps.risk.case import Reason

__all__ = ["CheckedReasons", "check_citations"]


@dataclass(frozen=True, slots=True)
class CheckedReasons:
    """The reasons kept, and how many were dropped for citing an absent feature."""

    kept: list[Reason]
    dropped: int
    dropped_features: tuple[str, ...] = ()


def check_citations(reasons: Iterable[Reason], present: Collection[str]) -> CheckedReasons:
    """Keep the reasons whose ``feature`` is in ``present`` (the case's feature ids).

    A reason naming an id with brackets (``[age_days]``, as the narrative shows it) is
    read as the bare id. Duplicates of a kept feature are kept once.
    """
    kept: list[Reason] = []
    dropped: list[str] = []
    seen: set[str] = set()
    for reason in reasons:
        feature = reason.feature.strip().strip("[]").strip()
        if feature not in present:
            dropped.append(reason.feature)
            continue
        if feature in seen:
            continue
        seen.add(feature)
        kept.append(Reason(feature=feature, evidence=reason.evidence))
    return CheckedReasons(kept, len(dropped), tuple(dropped))
