"""``luodi eval run`` and ``report``: a plan over a live luodi, one offline HTML file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.evaluation.plan import load_plan, run_plan
from luodi.evaluation.report import bootstrap_interval, render_html, summarise
from tests.conftest import LiveServer

TASKS = Path(__file__).parents[2] / "luodi" / "evaluation" / "tasks"


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_n() -> None:
    lo, hi = bootstrap_interval([1, 0] * 10)
    assert lo < 0.5 < hi
    lo_big, hi_big = bootstrap_interval([1, 0] * 500)
    assert hi_big - lo_big < hi - lo
    assert bootstrap_interval([1] * 10) == (1.0, 1.0)


def test_plan_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "eval.yaml"
    path.write_text("candidates: [{name: a, endpont: x}]\n")
    with pytest.raises(Exception, match=r"eval\.yaml: candidates\.0\.endpont"):
        load_plan(path)


@pytest.mark.model
async def test_plan_ranks_candidates_and_report_is_self_contained(
    live_server: LiveServer, engine: LlamaCppEngine, tmp_path: Path
) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text(
        json.dumps(
            {"model": "m", "levels": [{"concurrency": 1, "requests": 1, "throughput_tok_s": 50}]}
        )
    )
    (tmp_path / "luodi.yaml").write_text("security:\n  auth_enabled: true\n")
    plan_file = tmp_path / "eval.yaml"
    plan_file.write_text(
        f"""
candidates:
  - name: scored
    endpoint: {live_server.url}
    model: {live_server.model}
    bench: bench.json
    config: luodi.yaml
    declarations: {{backups: nightly}}
    modes: [loglikelihood]
  - name: chat-only
    modes: [generate, generation]
    endpoint: {live_server.url}
    model: {live_server.model}
tasks:
  - {{path: {TASKS / "general_en.jsonl"}, mode: loglikelihood}}
  - {{path: {TASKS / "general_en.jsonl"}, mode: generate}}
  - path: {TASKS / "short_answer_en.jsonl"}
    mode: generation
    judge: {{endpoint: {live_server.url}, model: {live_server.model}}}
limit: 3
weights: {{capability: 1, cost: 1, compliance: 1}}
"""
    )
    plan = load_plan(plan_file)

    def tokenize(text: str, special: bool) -> list[int]:
        return engine.tokenize(text, add_special=special)

    results = await run_plan(plan, tokenizers={"scored": tokenize}, api_key=live_server.api_key)
    scored = results["candidates"][0]
    assert [t["mode"] for t in scored["capability"]] == ["loglikelihood"]
    assert scored["cost"]["peak_output_tok_s"] == 50
    assert scored["compliance"]["counts"]["pass"] > 0
    chat = results["candidates"][1]
    assert [t["mode"] for t in chat["capability"]] == ["generate", "generation"]
    assert chat["capability"][1]["judge"]["model"] == live_server.model
    assert chat["cost"] is None and chat["compliance"] is None

    summary = summarise(results)
    assert summary["pick"] in {"scored", "chat-only"} and "weighted 3C score" in summary["why"]
    assert set(summary["ranking"][0]["axes"]) <= {"capability", "cost", "compliance"}
    page = render_html(results, summary)
    assert page.count("<svg") == 3
    assert "<script" not in page
    # Nothing fetched from elsewhere: the only URLs are SVG's namespace and the endpoint.
    urls = set(re.findall(r"https?://[^\"'<> ]+", page)) - {"http://www.w3.org/2000/svg"}
    assert urls <= {live_server.url + "/v1"}
    assert "95% CI" in page and "not a certification" in page
    assert f"judge {live_server.model}" in page


def test_unknown_scenario_metric_names_the_known_ones() -> None:
    from luodi.errors import ConfigError
    from luodi.evaluation.scenarios import build_scenario

    with pytest.raises(
        ConfigError, match=r"unknown scenario metric 'auc'; known: \['results_file'\]"
    ):
        build_scenario("auc", {})


async def test_scenario_result_from_a_file_appears_in_the_report(tmp_path: Path) -> None:
    (tmp_path / "intent.json").write_text(
        json.dumps({"name": "intent accuracy", "value": 0.9, "n": 10, "outcomes": [1] * 9 + [0]})
    )
    plan_file = tmp_path / "eval.yaml"
    plan_file.write_text(
        "candidates:\n  - name: app\n    scenarios: [{metric: results_file, path: intent.json}]\n"
    )
    results = await run_plan(load_plan(plan_file), tokenizers={})
    [scenario] = results["candidates"][0]["scenarios"]
    assert scenario["name"] == "intent accuracy" and scenario["n"] == 10
    page = render_html(results, summarise(results))
    assert "intent accuracy" in page and "Scenario metrics" in page


@pytest.mark.model
async def test_run_measures_throughput_itself_and_probes_the_server(
    live_server: LiveServer, tmp_path: Path
) -> None:
    (tmp_path / "luodi.yaml").write_text("security:\n  auth_enabled: true\n")
    plan_file = tmp_path / "eval.yaml"
    plan_file.write_text(
        f"""
candidates:
  - name: measured
    endpoint: {live_server.url}
    model: {live_server.model}
    measure: {{concurrency: [1, 2], max_tokens: 8, requests_per_client: 1}}
    config: luodi.yaml
    probe: true
"""
    )
    results = await run_plan(load_plan(plan_file), tokenizers={}, api_key=live_server.api_key)
    cost = results["candidates"][0]["cost"]
    levels = cost["bench"]["measured"]["levels"]
    assert [lv["concurrency"] for lv in levels] == [1, 2]
    assert all(lv["requests"] >= 1 and lv["errors"] == 0 for lv in levels)
    assert cost["peak_output_tok_s"] == max(lv["throughput_tok_s"] for lv in levels) > 0
    controls = {c["id"]: c for c in results["candidates"][0]["compliance"]["controls"]}
    assert controls["LIVE_AUTH"]["status"] == "pass"
    assert "GET /admin/audit/verify: ok = True" in controls["AUDIT_INTEGRITY"]["evidence"]


def test_measure_needs_positive_levels(tmp_path: Path) -> None:
    plan_file = tmp_path / "eval.yaml"
    plan_file.write_text("candidates: [{name: a, measure: {concurrency: [0]}}]\n")
    with pytest.raises(Exception, match=r"eval\.yaml: candidates\.0\.measure\.concurrency"):
        load_plan(plan_file)
