"""The 3C report in a real browser: it renders its charts, draws something, logs no error."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from luodi.evaluation.report import render_html, summarise


def _results() -> dict[str, Any]:
    def task(acc: float, n: int) -> dict[str, Any]:
        correct = [1] * int(acc * n) + [0] * (n - int(acc * n))
        return {"task": "general_en", "mode": "loglikelihood", "acc": acc, "acc_norm": acc,
                "n": n, "correct": correct}  # fmt: skip

    def cost(per_million: float) -> dict[str, Any]:
        return {
            "peak_output_tok_s": 40.0,
            "private": {"per_million_output_tokens": per_million},
            "volumes": [1e6, 1e7],
            "curves": {"private": [1.0, 2.0], "api": [0.5, 5.0]},
        }

    return {
        "seed": 1,
        "limit": None,
        "weights": {"capability": 0.5, "cost": 0.3, "compliance": 0.2},
        "candidates": [
            {
                "name": "local",
                "endpoint": "http://127.0.0.1:8000",
                "model": "m",
                "capability": [task(0.6, 20)],
                "scenarios": [],
                "cost": None,
                "compliance": None,
            },
            {
                "name": "cloud",
                "endpoint": "http://127.0.0.1:9000",
                "model": "c",
                "capability": [task(0.8, 20)],
                "scenarios": [],
                "cost": None,
                "compliance": None,
            },
        ],
    }


async def test_the_report_renders_in_chromium_without_errors(browser: Any, tmp_path: Path) -> None:
    results = _results()
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(results, summarise(results)), encoding="utf-8")
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    await page.goto(page_file.as_uri())
    charts = await page.eval_on_selector_all(
        "svg", "els => els.map(e => e.getBoundingClientRect()).map(r => r.width * r.height)"
    )
    shot = await page.screenshot(full_page=True, path=str(tmp_path / "report.png"))
    await context.close()

    assert problems == []
    assert len(charts) >= 2 and all(area > 1000 for area in charts)
    from PIL import Image

    image = Image.open(io.BytesIO(shot)).convert("L")
    low, high = image.getextrema()
    assert high - low > 100  # not a blank page: dark text and bars on a light ground
    assert len(set(image.resize((64, 64)).getdata())) > 8
