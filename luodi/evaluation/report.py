# ruff: noqa: E501  (SVG and HTML markup reads better unwrapped)
"""``luodi eval report``: one self-contained HTML file (inline SVG) and a JSON summary.

Capability per task with bootstrap 95% intervals, cost per day by volume (log-log
lines), the compliance table, and a 3C summary: each axis scored in [0, 1]
(capability: mean accuracy over the tasks run; cost: the cheapest cost per million
output tokens, any candidate's server or the priced API, over this candidate's;
compliance: passed over decided controls), weighted by the plan's weights over the axes a candidate has, and ranked.
No script, no external resource: it opens offline.
"""

from __future__ import annotations

import html
import math
import random
from typing import Any

__all__ = ["bootstrap_interval", "render_html", "summarise"]

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"]


def bootstrap_interval(
    correct: list[int], *, resamples: int = 2000, seed: int = 1234
) -> tuple[float, float]:
    """The 95% percentile-bootstrap interval of the mean of 0/1 outcomes."""
    if not correct:
        return (0.0, 0.0)
    rng = random.Random(seed)
    n = len(correct)
    means = sorted(sum(rng.choices(correct, k=n)) / n for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Axis scores, weighted totals, the ranking and the pick with its reasons."""
    weights: dict[str, float] = results["weights"]
    per_m = {
        c["name"]: c["cost"]["per_million_output_tokens"]["private"]
        for c in results["candidates"]
        if c.get("cost")
    }
    # The cheapest way to the same tokens: any candidate's server, or the API priced
    # in its sheet; a lone private candidate is not "cheapest" by default.
    api_per_m = [
        c["cost"]["per_million_output_tokens"]["api"]
        for c in results["candidates"]
        if c.get("cost")
    ]
    cheapest = min([*per_m.values(), *api_per_m]) if per_m else None
    rows = []
    for c in results["candidates"]:
        for cap in c["capability"]:
            lo, hi = bootstrap_interval(cap.get("correct", []), seed=results.get("seed", 1234))
            cap["ci95"] = [lo, hi]
        axes: dict[str, float] = {}
        if c["capability"]:
            axes["capability"] = sum(t["acc"] for t in c["capability"]) / len(c["capability"])
        if c["name"] in per_m and cheapest is not None:
            axes["cost"] = cheapest / per_m[c["name"]] if per_m[c["name"]] > 0 else 1.0
        if c.get("compliance"):
            counts = c["compliance"]["counts"]
            decided = counts["pass"] + counts["fail"]
            axes["compliance"] = counts["pass"] / decided if decided else 1.0
        total_w = sum(weights[a] for a in axes)
        score = sum(weights[a] * s for a, s in axes.items()) / total_w if total_w else 0.0
        rows.append({"name": c["name"], "axes": axes, "score": score})
    rows.sort(key=lambda r: -r["score"])
    pick = rows[0] if rows else None
    why = ""
    if pick is not None:
        parts = ", ".join(f"{a} {s:.2f}" for a, s in pick["axes"].items())
        why = (
            f"{pick['name']} has the highest weighted 3C score ({pick['score']:.2f}: {parts};"
            f" weights {', '.join(f'{a} {w:g}' for a, w in weights.items())})"
        )
        if len(rows) > 1:
            why += f", ahead of {rows[1]['name']} ({rows[1]['score']:.2f})"
    return {"ranking": rows, "pick": pick["name"] if pick else None, "why": why}


def _e(value: object) -> str:
    return html.escape(str(value))


def _accuracy_svg(results: dict[str, Any]) -> str:
    bars = [
        (c["name"], t["task"], t["mode"], t["acc"], t.get("ci95", [t["acc"], t["acc"]]), i)
        for i, c in enumerate(results["candidates"])
        for t in c["capability"]
    ]
    if not bars:
        return "<p>No capability results.</p>"
    bw, gap, height, left, top = 36, 14, 220, 40, 10
    width = left + len(bars) * (bw + gap) + 20

    def y(v: float) -> float:
        return top + height * (1 - v)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 110}">']
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        out.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y(tick)}" y2="{y(tick)}" stroke="#e5e7eb"/>'
            f'<text x="{left - 6}" y="{y(tick) + 4}" font-size="10" text-anchor="end">{tick:g}</text>'
        )
    for k, (cand, task, mode, acc, (lo, hi), i) in enumerate(bars):
        x = left + k * (bw + gap) + gap / 2
        colour = PALETTE[i % len(PALETTE)]
        out.append(
            f'<rect x="{x}" y="{y(acc)}" width="{bw}" height="{height * acc}" fill="{colour}">'
            f"<title>{_e(cand)} {_e(task)} {_e(mode)}: {acc:.3f} [{lo:.2f}, {hi:.2f}]</title></rect>"
        )
        cx = x + bw / 2
        out.append(
            f'<line x1="{cx}" x2="{cx}" y1="{y(hi)}" y2="{y(lo)}" stroke="#111" stroke-width="1.5"/>'
            f'<line x1="{cx - 6}" x2="{cx + 6}" y1="{y(hi)}" y2="{y(hi)}" stroke="#111"/>'
            f'<line x1="{cx - 6}" x2="{cx + 6}" y1="{y(lo)}" y2="{y(lo)}" stroke="#111"/>'
        )
        label = f"{task} · {mode[:4]}"
        out.append(
            f'<text transform="translate({cx},{top + height + 8}) rotate(45)" font-size="10">'
            f"{_e(label)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _cost_svg(results: dict[str, Any]) -> str:
    series: list[tuple[str, str, list[tuple[float, float]]]] = []
    for i, c in enumerate(results["candidates"]):
        cost = c.get("cost")
        if not cost:
            continue
        rows = cost["daily_cost_by_volume"]
        colour = PALETTE[i % len(PALETTE)]
        for mode, dash in (("private", ""), ("hybrid", "6 3")):
            pts = [(r["output_tokens_per_day"], r[mode]) for r in rows]
            series.append((f"{c['name']} {mode}", colour + "|" + dash, pts))
        if i == 0 or not any(s[0] == "API" for s in series):
            series.append(
                ("API", "#6b7280|2 3", [(r["output_tokens_per_day"], r["api"]) for r in rows])
            )
    if not series:
        return "<p>No cost results.</p>"
    xs = [p[0] for s in series for p in s[2] if p[0] > 0]
    ys = [p[1] for s in series for p in s[2] if p[1] > 0]
    x0, x1 = math.log10(min(xs)), math.log10(max(xs))
    y0, y1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    w, h, left, top = 520, 260, 60, 10

    def px(v: float) -> float:
        return left + w * (math.log10(v) - x0) / max(1e-9, x1 - x0)

    def py(v: float) -> float:
        return top + h * (1 - (math.log10(max(v, 10.0**y0)) - y0) / max(1e-9, y1 - y0))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + w + 200}" height="{h + 50}">']
    for e in range(y0, y1 + 1):
        out.append(
            f'<line x1="{left}" x2="{left + w}" y1="{py(10.0**e)}" y2="{py(10.0**e)}" stroke="#e5e7eb"/>'
            f'<text x="{left - 6}" y="{py(10.0**e) + 4}" font-size="10" text-anchor="end">1e{e}</text>'
        )
    for e in range(int(x0), int(x1) + 1):
        out.append(
            f'<text x="{px(10.0**e)}" y="{top + h + 16}" font-size="10" text-anchor="middle">1e{e}</text>'
        )
    out.append(
        f'<text x="{left + w / 2}" y="{top + h + 34}" font-size="11" text-anchor="middle">'
        "output tokens per day (cost per day, log scales)</text>"
    )
    for k, (name, style, pts) in enumerate(series):
        colour, dash = style.split("|")
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts if x > 0 and y > 0)
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"'
            f' stroke-dasharray="{dash}"><title>{_e(name)}</title></polyline>'
            f'<line x1="{left + w + 12}" x2="{left + w + 36}" y1="{top + 12 + 16 * k}"'
            f' y2="{top + 12 + 16 * k}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>'
            f'<text x="{left + w + 42}" y="{top + 16 + 16 * k}" font-size="11">{_e(name)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _summary_svg(summary: dict[str, Any]) -> str:
    rows = summary["ranking"]
    if not rows:
        return ""
    axes = ["capability", "cost", "compliance"]
    h, left, bar = 18, 140, 260
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + bar + 80}"'
        f' height="{len(rows) * (4 * h + 12) + 10}">'
    ]
    yy = 10
    for r in rows:
        for j, axis in enumerate([*axes, "score"]):
            value = r["score"] if axis == "score" else r["axes"].get(axis)
            label = f"{r['name']} · {axis}" if j == 0 else axis
            out.append(
                f'<text x="{left - 6}" y="{yy + 13}" font-size="11" text-anchor="end">{_e(label)}</text>'
            )
            if value is not None:
                colour = "#111827" if axis == "score" else PALETTE[j]
                out.append(
                    f'<rect x="{left}" y="{yy + 3}" width="{bar * value:.1f}" height="{h - 6}" fill="{colour}"/>'
                    f'<text x="{left + bar * value + 6:.1f}" y="{yy + 13}" font-size="11">{value:.2f}</text>'
                )
            else:
                out.append(
                    f'<text x="{left + 4}" y="{yy + 13}" font-size="11" fill="#9ca3af">not measured</text>'
                )
            yy += h
        yy += 12
    out.append("</svg>")
    return "".join(out)


def _compliance_tables(results: dict[str, Any]) -> str:
    parts = []
    for c in results["candidates"]:
        comp = c.get("compliance")
        if not comp:
            continue
        rows = "".join(
            f'<tr class="{_e(f["status"]).replace(".", "")}"><td>{_e(f["id"])}</td><td>{_e(f["status"])}</td>'
            f"<td>{_e(f['evidence'])}</td><td>{_e(f['fix'])}</td><td>{_e(f['mlps'])}</td>"
            f"<td>{_e(f['iso27001'])}</td><td>{_e(f['gdpr'])}</td></tr>"
            for f in comp["controls"]
        )
        parts.append(
            f"<h3>{_e(c['name'])}</h3><table><tr><th>control</th><th>status</th><th>evidence</th>"
            "<th>fix</th><th>MLPS 2.0 L3</th><th>ISO 27001:2022</th><th>GDPR</th></tr>"
            f"{rows}</table><p class=note>{_e(comp['disclaimer'])}</p>"
        )
    return "".join(parts) or "<p>No compliance results.</p>"


def _mode(task: dict[str, Any]) -> str:
    judge = task.get("judge")
    if not judge:
        return str(task["mode"])
    return f"{task['mode']} (judge {judge['model']}: {judge['accuracy']:.3f})"


def _second_metric(task: dict[str, Any]) -> str:
    for key in ("acc_norm", "f1"):
        if task.get(key) is not None:
            return f"{task[key]:.3f}"
    return ""


def _scenario_table(results: dict[str, Any]) -> str:
    rows = []
    for c in results["candidates"]:
        for sc in c.get("scenarios") or []:
            ci = ""
            if sc.get("outcomes"):
                outcomes = [round(x) for x in sc["outcomes"]]
                if set(outcomes) <= {0, 1}:
                    lo, hi = bootstrap_interval(outcomes, seed=results.get("seed", 1234))
                    ci = f"{lo:.3f}–{hi:.3f}"
            better = "higher" if sc.get("higher_is_better", True) else "lower"
            rows.append(
                f"<tr><td>{_e(c['name'])}</td><td>{_e(sc['name'])}</td><td>{sc['value']:.4g}"
                f" {_e(sc.get('unit', ''))}</td><td>{sc['n']}</td><td>{ci}</td><td>{better} is better</td>"
                f"<td>{_e(sc.get('source', ''))}</td></tr>"
            )
    if not rows:
        return "<p>No scenario metrics.</p>"
    return (
        "<table><tr><th>candidate</th><th>metric</th><th>value</th><th>n</th><th>95% CI</th>"
        f"<th></th><th>source</th></tr>{''.join(rows)}</table>"
        "<p class=note>Scenario metrics are shown, not folded into the 3C score.</p>"
    )


def render_html(results: dict[str, Any], summary: dict[str, Any]) -> str:
    """The whole report as one HTML string."""
    cap_rows = "".join(
        f"<tr><td>{_e(c['name'])}</td><td>{_e(t['task'])}</td><td>{_e(_mode(t))}</td>"
        f"<td>{t['n']}</td><td>{t['acc']:.3f}</td><td>{t.get('ci95', [0, 0])[0]:.3f}–"
        f"{t.get('ci95', [0, 0])[1]:.3f}</td><td>"
        f"{_second_metric(t)}</td></tr>"
        for c in results["candidates"]
        for t in c["capability"]
    )
    cost_rows = "".join(
        f"<tr><td>{_e(c['name'])}</td><td>{c['cost']['peak_output_tok_s']:.1f}</td>"
        f"<td>{c['cost']['per_million_output_tokens']['private']:.2f}</td>"
        f"<td>{c['cost']['per_million_output_tokens']['api']:.2f}</td>"
        f"<td>{_e(c['cost']['break_even_output_tokens_per_day'] or 'none')}</td>"
        f"<td>{_e(c['cost']['prices_taken_on'])}</td></tr>"
        for c in results["candidates"]
        if c.get("cost")
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>luodi eval report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#111827}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{border:1px solid #d1d5db;padding:4px 8px;
font-size:13px;vertical-align:top}}th{{background:#f3f4f6}}tr.pass td:nth-child(2){{color:#15803d}}
tr.fail td:nth-child(2){{color:#b91c1c;font-weight:600}}.pick{{font-size:1.2em;padding:.8em;
background:#eff6ff;border-left:4px solid #2563eb}}.note{{color:#6b7280;font-size:12px}}
</style></head><body>
<h1>luodi eval report</h1>
<p class="pick"><b>Pick: {_e(summary["pick"])}</b> — {_e(summary["why"])}</p>
<h2>3C summary</h2>{_summary_svg(summary)}
<h2>Capability</h2>{_accuracy_svg(results)}
<table><tr><th>candidate</th><th>task</th><th>mode</th><th>n</th><th>acc</th><th>95% CI (bootstrap)</th>
<th>acc_norm (log-likelihood) / F1 (generation)</th></tr>{cap_rows}</table>
<p class=note>acc is exact match for generation tasks. Log-likelihood and generate are different measurements; they are never averaged
within a task. Seed {_e(results.get("seed"))}.</p>
<h2>Scenario metrics</h2>{_scenario_table(results)}
<h2>Cost</h2>{_cost_svg(results)}
<table><tr><th>candidate</th><th>measured peak output tok/s</th><th>private / M output tokens</th>
<th>API / M output tokens</th><th>break-even tokens/day</th><th>prices of</th></tr>{cost_rows}</table>
<h2>Compliance</h2>{_compliance_tables(results)}
</body></html>
"""
