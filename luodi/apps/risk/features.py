"""A case's feature table: its own tabular features plus aggregates of its events.

Every value has a stable feature id, the one the narrative shows in brackets and a
reason cites: tabular features keep their names, event aggregates are
``events.<window>.<what>`` (``events.24h.small_count``). Windows end at the case's
last event, so the same case always gives the same table, whenever it is scored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from luodi.apps.risk.case import Case, Event, FeatureValue

__all__ = [
    "CARD_NOT_PRESENT",
    "SMALL_AMOUNT",
    "WINDOWS",
    "Window",
    "WindowStats",
    "feature_table",
    "history_features",
    "window_stats",
]

SMALL_AMOUNT = 10.0
"""Amounts under this (in the event's currency) count as small: card testing's signature."""

CARD_NOT_PRESENT = frozenset({"online", "ecommerce", "ecom", "cnp", "web", "app", "moto"})
"""Channels where the card is not present."""


@dataclass(frozen=True, slots=True)
class Window:
    """A time window ending at the case's last event."""

    key: str
    """The id segment: ``24h``, ``7d``."""
    span: timedelta
    en: str
    zh: str


WINDOWS: tuple[Window, ...] = (
    Window("24h", timedelta(hours=24), "last 24 h", "近24小时"),
    Window("7d", timedelta(days=7), "last 7 days", "近7天"),
)


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Aggregates of the events inside one window."""

    window: Window
    count: int
    amount_total: float
    small_count: int
    cnp_count: int
    new_devices: int
    devices: int
    locations: int
    counterparties: int
    new_counterparties: int
    types: dict[str, int]
    currency: str | None

    def features(self) -> dict[str, float]:
        """The window's feature ids and values."""
        k = f"events.{self.window.key}"
        return {
            f"{k}.count": float(self.count),
            f"{k}.amount_total": round(self.amount_total, 2),
            f"{k}.small_count": float(self.small_count),
            f"{k}.cnp_count": float(self.cnp_count),
            f"{k}.new_devices": float(self.new_devices),
            f"{k}.devices": float(self.devices),
            f"{k}.locations": float(self.locations),
            f"{k}.counterparties": float(self.counterparties),
            f"{k}.new_counterparties": float(self.new_counterparties),
            **{f"{k}.type.{name}": float(n) for name, n in self.types.items()},
        }


def _distinct(values: Iterable[str | None]) -> set[str]:
    return {v for v in values if v}


def window_stats(events: Sequence[Event], window: Window) -> WindowStats:
    """Aggregate the events of ``window``; "new" means not seen before the window opened."""
    end = max(e.ts for e in events)
    start: datetime = end - window.span
    inside = [e for e in events if e.ts > start]
    before = [e for e in events if e.ts <= start]
    devices = _distinct(e.device for e in inside)
    counterparties = _distinct(e.counterparty for e in inside)
    types: dict[str, int] = {}
    for e in inside:
        types[e.type] = types.get(e.type, 0) + 1
    currencies = _distinct(e.currency for e in inside)
    return WindowStats(
        window=window,
        count=len(inside),
        amount_total=sum(e.amount for e in inside),
        small_count=sum(1 for e in inside if 0 < e.amount < SMALL_AMOUNT),
        cnp_count=sum(1 for e in inside if (e.channel or "").lower() in CARD_NOT_PRESENT),
        new_devices=len(devices - _distinct(e.device for e in before)),
        devices=len(devices),
        locations=len(_distinct(e.location for e in inside)),
        counterparties=len(counterparties),
        new_counterparties=len(counterparties - _distinct(e.counterparty for e in before)),
        types=dict(sorted(types.items(), key=lambda kv: (-kv[1], kv[0]))),
        currency=next(iter(currencies)) if len(currencies) == 1 else None,
    )


def history_features(events: Sequence[Event]) -> dict[str, float]:
    """Whole-sequence features: how many events, over how many days."""
    first, last = min(e.ts for e in events), max(e.ts for e in events)
    return {
        "events.all.count": float(len(events)),
        "events.all.span_days": round((last - first).total_seconds() / 86400, 2),
    }


def feature_table(case: Case) -> dict[str, FeatureValue]:
    """Every feature id of ``case`` and its value: tabular first, then event aggregates."""
    table: dict[str, FeatureValue] = dict(case.features)
    if case.events:
        for window in WINDOWS:
            table.update(window_stats(case.events, window).features())
        table.update(history_features(case.events))
    return table
