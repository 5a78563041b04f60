"""A self-contained HTML report of a run, from its summary: no scripts, no network.

Charts are inline SVG bars. Examples of dropped records are ids or input lines only,
never text, so the report holds no personal data the rejected file may still hold.
"""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["render_html"]

_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}h2{margin-top:1.6em}small{color:#666}
"""


def _bars(items: list[tuple[str, int]], color: str = "#4a7bd1") -> str:
    """Horizontal bar chart, one row per (label, value)."""
    if not items:
        return "<p><small>none</small></p>"
    top = max(v for _, v in items) or 1
    row_h, label_w, bar_w = 20, 220, 520
    rows = []
    for i, (label, value) in enumerate(items):
        y = i * row_h
        width = max(1, round(bar_w * value / top))
        rows.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{width}" height="{row_h - 6}" fill="{color}"/>'
            f'<text x="{label_w + width + 4}" y="{y + 14}">{value:,}</text>'
        )
    height = row_h * len(items)
    return (
        f'<svg width="{label_w + bar_w + 80}" height="{height}" font-size="12" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(rows)}</svg>'
    )


def _table(head: list[str], rows: list[list[Any]]) -> str:
    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{v:,}</td>' if isinstance(v, int) else f"<td>{escape(str(v))}</td>"
            for v in row
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{cells}</tr>{body}</table>"


_HISTOGRAMS = (
    ("chars", "length in characters (from)"),
    ("digits", "digit share"),
    ("dup_lines", "share of repeated lines"),
    ("symbols", "symbols per word, x10 (English)"),
    ("zh_punct", "punctuation share, x10 (Chinese)"),
)
"""The quality signals the quality stage counts (``hist:<metric>:<bucket>``), in order."""


def render_html(summary: dict[str, Any]) -> str:
    """The report page for one run's ``summary.json``."""
    stages: list[dict[str, Any]] = summary["stages"]
    parts = [
        f"<!doctype html><meta charset=utf-8><title>luodi pipeline report</title>"
        f"<style>{_STYLE}</style><h1>Pipeline report</h1>"
        f"<p>{escape(str(summary['input']))} → {escape(str(summary['output']))}<br>"
        f"<small>{summary['records_in']:,} records in, {summary['records_out']:,} kept, "
        f"{summary['shards']} shards, {summary['workers']} workers, "
        f"{summary['elapsed_s']} s</small></p>",
        "<h2>Records through the stages</h2>",
        _bars([(f"{s['name']} in", s["in"]) for s in stages] + [("kept", summary["records_out"])]),
        _table(
            ["stage", "in", "out", "dropped"],
            [[s["name"], s["in"], s["out"], s["in"] - s["out"]] for s in stages],
        ),
        "<h2>Why records were dropped</h2>",
    ]
    reasons = [
        [s["name"], reason, n, ", ".join(map(str, s["examples"].get(reason, [])))]
        for s in stages
        for reason, n in s["dropped"].items()
    ]
    parts.append(_bars([(f"{r[0]}: {r[1]}", r[2]) for r in reasons], "#d1694a"))
    parts.append(_table(["stage", "reason", "records", "examples (id or line)"], reasons))
    for s in stages:
        stats: dict[str, int] = s["stats"]
        langs = sorted(
            ((k.split(":", 1)[1], v) for k, v in stats.items() if k.startswith("lang:")),
            key=lambda kv: -kv[1],
        )
        if langs:
            parts += ["<h2>Language mix</h2>", _bars(langs[:20], "#5aa469")]
        for metric, title in _HISTOGRAMS:
            hist = [
                (k.rsplit(":", 1)[1], v)
                for k, v in stats.items()
                if k.startswith(f"hist:{metric}:")
            ]
            if hist:
                hist.sort(key=lambda kv: float(kv[0]))
                parts += [f"<h2>Quality input: {title}</h2>", _bars(hist, "#c9a227")]
        clusters: list[dict[str, Any]] = s.get("largest_clusters") or []
        if clusters:
            parts += [
                f"<h2>Duplicate clusters: {s['name']}</h2>",
                f"<p><small>{s.get('clusters', len(clusters)):,} kept records have duplicates;"
                " the largest:</small></p>",
                _table(
                    ["kept record (id or line)", "duplicates dropped", "some of them"],
                    [
                        [str(c["kept"]), c["duplicates"], ", ".join(map(str, c["examples"]))]
                        for c in clusters
                    ],
                ),
            ]
        pii = [
            (k, v) for k, v in stats.items() if k.split(":")[0] in ("found", "removed", "residue")
        ]
        if pii:
            parts += ["<h2>Personal data by type</h2>", _bars(sorted(pii), "#8a5ad1")]
    if summary.get("compliance"):
        parts.append("<h2>Compliance evidence</h2>")
        parts.append(
            _table(
                ["check", "checked", "failed", "GDPR", "MLPS 2.0"],
                [
                    [
                        r["check"],
                        r["checked"],
                        r["failed"],
                        "; ".join(r["gdpr"]),
                        "; ".join(r["mlps"]),
                    ]
                    for r in summary["compliance"]
                ],
            )
        )
        parts.append(
            "<p><small>What the run did, mapped to the clauses it supports; "
            "not a legal assessment.</small></p>"
        )
    return "\n".join(parts) + "\n"
