"""The deterministic renderer: a case as a compact narrative, in English or Chinese.

One line per feature id, the id in brackets first, so a reason can cite what the
model read (``[events.24h.small_count] last 24 h: 11 under ¥10``). Event lines come
first, newest window first, then the history, then the tabular features by name. The
same case always renders to the same text: the renderer reads no clock and no state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from luodi.apps.risk.case import Case, FeatureValue
from luodi.apps.risk.features import (
    SMALL_AMOUNT,
    WINDOWS,
    WindowStats,
    history_features,
    window_stats,
)

__all__ = ["Language", "Narrative", "render"]

Language = Literal["en", "zh"]

_SYMBOLS = {"CNY": "¥", "RMB": "¥", "JPY": "JP¥", "USD": "$", "EUR": "€", "GBP": "£"}


@dataclass(frozen=True, slots=True)
class Narrative:
    """A rendered case: its lines, each ``(feature id, text)``."""

    lines: tuple[tuple[str, str], ...]

    @property
    def text(self) -> str:
        """The narrative as the model reads it, one ``[id] text`` line per feature."""
        return "\n".join(f"[{fid}] {line}" for fid, line in self.lines)

    @property
    def feature_ids(self) -> tuple[str, ...]:
        """The ids the narrative shows, in order."""
        return tuple(fid for fid, _ in self.lines)

    def without(self, feature_id: str) -> str:
        """The text with ``feature_id``'s line left out (the probe's ablation)."""
        return "\n".join(f"[{fid}] {line}" for fid, line in self.lines if fid != feature_id)


def _number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _money(amount: float, currency: str | None) -> str:
    if currency is None:
        return f"{amount:.2f}"
    symbol = _SYMBOLS.get(currency.upper())
    return f"{symbol}{amount:.2f}" if symbol else f"{amount:.2f} {currency.upper()}"


def _value(value: FeatureValue) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return _number(float(value))
    return value


def _types(stats: WindowStats, lang: Language) -> str:
    top = list(stats.types.items())[:3]
    if lang == "zh":
        return "，".join(f"{name} {n}笔" for name, n in top)
    return ", ".join(f"{n} {name}" for name, n in top)


def _window_lines(
    stats: WindowStats, lang: Language, first_new_device_h: float | None
) -> list[tuple[str, str]]:
    w, k, cur = stats.window, f"events.{stats.window.key}", stats.currency
    small = _money(SMALL_AMOUNT, cur).replace(".00", "")
    lines: list[tuple[str, str]] = []
    if lang == "zh":
        lines.append(
            (
                f"{k}.count",
                f"{w.zh}：{stats.count}笔事件（{_types(stats, lang)}），"
                f"合计{_money(stats.amount_total, cur)}",
            )
        )
        if stats.small_count:
            lines.append((f"{k}.small_count", f"{w.zh}：{stats.small_count}笔低于{small}"))
        if stats.cnp_count:
            lines.append((f"{k}.cnp_count", f"{w.zh}：{stats.cnp_count}笔无卡交易"))
        if stats.new_devices:
            first = (
                f"，最早一台出现于最后事件前{_number(first_new_device_h)}小时"
                if first_new_device_h is not None
                else ""
            )
            lines.append(
                (
                    f"{k}.new_devices",
                    f"{w.zh}：{stats.new_devices}台新设备（共{stats.devices}台）{first}",
                )
            )
        if stats.locations > 1:
            lines.append((f"{k}.locations", f"{w.zh}：{stats.locations}个地点"))
        if stats.new_counterparties:
            lines.append(
                (f"{k}.new_counterparties", f"{w.zh}：{stats.new_counterparties}个新交易对手")
            )
        return lines
    lines.append(
        (
            f"{k}.count",
            f"{w.en}: {stats.count} events ({_types(stats, lang)}), "
            f"total {_money(stats.amount_total, cur)}",
        )
    )
    if stats.small_count:
        lines.append((f"{k}.small_count", f"{w.en}: {stats.small_count} under {small}"))
    if stats.cnp_count:
        lines.append((f"{k}.cnp_count", f"{w.en}: {stats.cnp_count} card-not-present"))
    if stats.new_devices:
        first = (
            f"; first new device seen {_number(first_new_device_h)} h before the last event"
            if first_new_device_h is not None
            else ""
        )
        lines.append(
            (
                f"{k}.new_devices",
                f"{w.en}: {stats.new_devices} new devices ({stats.devices} in all){first}",
            )
        )
    if stats.locations > 1:
        lines.append((f"{k}.locations", f"{w.en}: {stats.locations} locations"))
    if stats.new_counterparties:
        lines.append(
            (f"{k}.new_counterparties", f"{w.en}: {stats.new_counterparties} new counterparties")
        )
    return lines


def _first_new_device_hours(case: Case, stats: WindowStats) -> float | None:
    """Hours between the first sighting of a device new in the window and the last event."""
    end = max(e.ts for e in case.events)
    start = end - stats.window.span
    seen_before = {e.device for e in case.events if e.ts <= start and e.device}
    firsts = [
        e.ts for e in case.events if e.ts > start and e.device and e.device not in seen_before
    ]
    if not firsts:
        return None
    return round((end - min(firsts)).total_seconds() / 3600, 1)


def render(case: Case, lang: Language = "en") -> Narrative:
    """Render ``case``; a 7-day line is left out where it repeats the 24-hour one."""
    lines: list[tuple[str, str]] = []
    if case.events:
        shown: dict[str, str] = {}
        for window in WINDOWS:
            stats = window_stats(case.events, window)
            for fid, text in _window_lines(stats, lang, _first_new_device_hours(case, stats)):
                what = fid.rsplit(".", 1)[1]
                value = str(stats.features().get(fid))
                if shown.get(what) == value:
                    continue
                shown[what] = value
                lines.append((fid, text))
        history = history_features(case.events)
        count, days = history["events.all.count"], history["events.all.span_days"]
        if lang == "zh":
            text = f"历史：共{_number(count)}笔事件，跨{_number(days)}天"
        else:
            text = f"history: {_number(count)} events over {_number(days)} days"
        lines.append(("events.all.count", text))
    for name in sorted(case.features):
        sep = "：" if lang == "zh" else ": "
        lines.append((name, f"{name}{sep}{_value(case.features[name])}"))
    return Narrative(tuple(lines))
