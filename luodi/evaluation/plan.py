"""``luodi eval run``: one plan (YAML), several candidates, any of the three Cs.

A plan names candidate deployments and what to measure on each::

    candidates:
      - name: local-q4
        endpoint: http://127.0.0.1:8000
        model: gemma-3-270m-q4_k_m
        tokenizer: models/gemma-3-270m-q4_k_m.gguf   # forced-token scoring (luodi)
        modes: [loglikelihood, generate]              # which tasks it runs (default both)
        bench: bench-results/serving.json             # cost: measured tokens/s
        gguf: models/gemma-3-270m-q4_k_m.gguf         # cost: memory figures
        config: luodi.yaml                            # compliance: its settings
        scenarios:                                    # app metrics (scenarios.py)
          - {metric: results_file, path: support-intent.json}
    tasks:
      - {path: tasks/general_en.jsonl, mode: loglikelihood}
      - {path: tasks/general_zh.jsonl, mode: generate}
      - {path: tasks/short_answer_en.jsonl, mode: generation}   # exact match + F1
      - path: tasks/short_answer_zh.jsonl
        mode: generation
        judge: {endpoint: http://judge:8000, model: qwen3-32b}  # LLM-as-judge, named
    weights: {capability: 0.5, cost: 0.3, compliance: 0.2}

Each part runs where its inputs are given and is left out otherwise; the results file
says which. The tokenizer is passed in by the caller (the CLI loads GGUF vocabularies),
so this module stays free of llama.cpp.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from luodi.config import load_settings
from luodi.errors import ConfigError
from luodi.evaluation.cache import ResponseCache
from luodi.evaluation.capability import CapabilityResult, run_generate, run_loglikelihood
from luodi.evaluation.compliance import Declarations, probe_server, run_checklist
from luodi.evaluation.cost import CostModel, best_level, load_prices, measured_throughput
from luodi.evaluation.endpoint import Endpoint
from luodi.evaluation.generation import DEFAULT_RUBRIC, Judge, run_generation
from luodi.evaluation.load import LoadConfig, run_sweep
from luodi.evaluation.scenarios import SCENARIOS, ScenarioFactory, build_scenario
from luodi.evaluation.scoring import ChatChooser, ChoiceScorer, EchoScorer, ForcedTokenScorer
from luodi.evaluation.tasks import load_task
from luodi.models.memory import model_memory

__all__ = ["Candidate", "EvalPlan", "Measure", "load_plan", "run_plan"]

Tokenizer = Callable[[str, bool], list[int]]
TaskMode = Literal["loglikelihood", "generate", "generation"]
ALL_MODES: tuple[TaskMode, ...] = ("loglikelihood", "generate", "generation")
VOLUMES = [1e5, 1e6, 1e7, 1e8, 1e9, 1e10]


class _Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Measure(_Plan):
    """A throughput sweep the run makes itself against the candidate (``luodi bench``'s)."""

    concurrency: list[int] = Field(default_factory=lambda: [1, 8], min_length=1)
    max_tokens: int = Field(default=64, ge=1)
    requests_per_client: int = Field(default=2, ge=1)

    @field_validator("concurrency")
    @classmethod
    def _positive(cls, levels: list[int]) -> list[int]:
        if any(level < 1 for level in levels):
            raise ValueError("concurrency levels must be positive")
        return levels


class Candidate(_Plan):
    name: str = Field(min_length=1)
    endpoint: str | None = None
    model: str | None = None
    tokenizer: Path | None = None
    bench: Path | None = None
    """A ``luodi bench`` JSON file measured before; or ``measure`` runs one now."""
    measure: Measure | None = None
    prices: Path | None = None
    gguf: Path | None = None
    kv_type: str = "q8_0"
    config: Path | None = None
    declarations: dict[str, str] = Field(default_factory=dict)
    probe: bool = False
    """Compliance also probes the candidate's running server (with the run's key, its
    /admin metadata): what an outsider sees, the live audit chain, admin keys."""
    modes: list[TaskMode] = Field(default_factory=lambda: list(ALL_MODES))
    """The task modes this candidate runs (a chat-only API: generate alone)."""
    scenarios: list[dict[str, Any]] = Field(default_factory=list)
    """Scenario metrics: ``{metric: <registered name>, ...its options}``."""


class JudgeSpec(_Plan):
    endpoint: str
    model: str
    rubric: Path | None = None
    """A rubric file (the judge's system prompt); the built-in one otherwise."""


class TaskRun(_Plan):
    path: Path
    mode: TaskMode
    definition: Path | None = None
    judge: JudgeSpec | None = None
    """LLM-as-judge for a generation task; named in the results and the report."""


class Weights(_Plan):
    capability: float = Field(default=0.5, ge=0)
    cost: float = Field(default=0.3, ge=0)
    compliance: float = Field(default=0.2, ge=0)


class EvalPlan(_Plan):
    """The plan file; relative paths are relative to the file."""

    candidates: list[Candidate] = Field(min_length=1)
    tasks: list[TaskRun] = Field(default_factory=list)
    limit: int | None = Field(default=None, ge=1)
    concurrency: int = Field(default=4, ge=1)
    seed: int = 1234
    weights: Weights = Field(default_factory=Weights)


def load_plan(path: Path) -> EvalPlan:
    """Read a plan; paths inside it resolved against its folder."""
    try:
        plan = EvalPlan.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such eval plan") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
    base = path.parent

    def here(p: Path | None) -> Path | None:
        return None if p is None or p.is_absolute() else base / p

    for c in plan.candidates:
        for attr in ("tokenizer", "bench", "prices", "gguf", "config"):
            value = getattr(c, attr)
            if value is not None and not value.is_absolute():
                setattr(c, attr, here(value))
        for spec in c.scenarios:
            if "path" in spec and not Path(str(spec["path"])).is_absolute():
                spec["path"] = str(base / str(spec["path"]))
    for t in plan.tasks:
        t.path = t.path if t.path.is_absolute() else base / t.path
        t.definition = here(t.definition) if t.definition else None
        if t.judge is not None and t.judge.rubric is not None:
            t.judge.rubric = here(t.judge.rubric) or t.judge.rubric
    return plan


def _judge(
    spec: JudgeSpec | None, api_key: str | None, cache: ResponseCache | None, seed: int
) -> Judge | None:
    if spec is None:
        return None
    rubric = spec.rubric.read_text(encoding="utf-8") if spec.rubric else DEFAULT_RUBRIC
    endpoint = Endpoint(spec.endpoint, spec.model, api_key=api_key, cache=cache)
    return Judge(endpoint, rubric=rubric, seed=seed)


async def _capability(
    plan: EvalPlan,
    c: Candidate,
    tokenizer: Tokenizer | None,
    api_key: str | None,
    cache: ResponseCache | None,
    on_item: Callable[[], None] | None,
) -> list[dict[str, Any]]:
    if c.endpoint is None or c.model is None or not plan.tasks:
        return []
    out: list[dict[str, Any]] = []
    for run in plan.tasks:
        if run.mode not in c.modes:
            continue
        endpoint = Endpoint(
            c.endpoint, c.model, api_key=api_key, concurrency=plan.concurrency, cache=cache
        )
        try:
            result: CapabilityResult
            if run.mode == "generation":
                judge = _judge(run.judge, api_key, cache, plan.seed)
                try:
                    result = await run_generation(
                        run.path,
                        endpoint,
                        limit=plan.limit,
                        seed=plan.seed,
                        on_item=on_item,
                        judge=judge,
                    )
                finally:
                    if judge is not None:
                        await judge.endpoint.aclose()
            elif run.mode == "generate":
                task = load_task(run.path, run.definition)
                chooser = ChatChooser(endpoint, seed=plan.seed)
                result = await run_generate(task, chooser, limit=plan.limit, on_item=on_item)
            else:
                task = load_task(run.path, run.definition)
                scorer: ChoiceScorer = (
                    ForcedTokenScorer(endpoint, tokenizer, seed=plan.seed)
                    if tokenizer is not None
                    else EchoScorer(endpoint, seed=plan.seed)
                )
                result = await run_loglikelihood(
                    task, scorer, endpoint, limit=plan.limit, seed=plan.seed, on_item=on_item
                )
        finally:
            await endpoint.aclose()
        row = result.to_json()
        # 0/1 per item, for the report's bootstrap (generation: exact match).
        row["correct"] = (
            list(result.predictions)
            if run.mode == "generation"
            else [int(r["pred"] == r["answer"]) for r in result.items]
        )
        out.append(row)
    return out


async def _scenarios(
    c: Candidate, api_key: str | None, registry: Mapping[str, ScenarioFactory]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for spec in c.scenarios:
        options = dict(spec)
        kind = str(options.pop("metric", ""))
        metric = build_scenario(kind, options, registry)
        endpoint = (
            Endpoint(c.endpoint, c.model, api_key=api_key)
            if c.endpoint is not None and c.model is not None
            else None
        )
        try:
            out.append((await metric.measure(endpoint)).to_json())
        finally:
            if endpoint is not None:
                await endpoint.aclose()
    return out


async def _sweep(c: Candidate, api_key: str | None) -> dict[str, Any]:
    """Measure the candidate's throughput now, as ``luodi bench`` would."""
    spec = c.measure
    assert spec is not None
    if c.endpoint is None or c.model is None:
        raise ConfigError(f"candidate {c.name}: measure needs an endpoint and a model")
    cfg = LoadConfig(
        base_url=c.endpoint.rstrip("/"),
        model=c.model,
        max_tokens=spec.max_tokens,
        requests_per_client=spec.requests_per_client,
        api_key=api_key,
    )
    levels = [r.as_dict() for r in await run_sweep(cfg, spec.concurrency)]
    return {"model": c.model, "url": cfg.base_url, "max_tokens": spec.max_tokens, "levels": levels}


async def _cost(c: Candidate, api_key: str | None) -> dict[str, Any] | None:
    if c.bench is None and c.measure is None:
        return None
    if c.bench is not None:
        peak, concurrency, model = measured_throughput(c.bench)
        source: dict[str, Any] = {"file": str(c.bench)}
    else:
        measured = await _sweep(c, api_key)
        try:
            peak, concurrency, model = best_level(measured)
        except ValueError:
            raise ConfigError(f"candidate {c.name}: every request to {c.endpoint} failed") from None
        source = {"measured": measured}
    summary = CostModel(load_prices(c.prices), peak).summary(VOLUMES)
    summary["bench"] = {**source, "model": model, "best_concurrency": concurrency}
    if c.gguf is not None:
        summary["memory"] = model_memory(c.gguf, kv_type=c.kv_type).to_json()
    return summary


async def _compliance(c: Candidate, api_key: str | None) -> dict[str, Any] | None:
    if c.config is None:
        return None
    known = {"tls_terminated_by", "backups", "cross_border_basis"}
    unknown = sorted(set(c.declarations) - known)
    if unknown:
        raise ConfigError(f"candidate {c.name}: unknown declarations {unknown}")
    decl = Declarations(**c.declarations)  # type: ignore[arg-type]
    if c.probe:
        if c.endpoint is None:
            raise ConfigError(f"candidate {c.name}: probe needs an endpoint")
        # A thread: the server may be served by this very event loop (tests, local runs).
        probe = await asyncio.to_thread(probe_server, c.endpoint, api_key=api_key)
        decl = replace(decl, server_probe=probe)
    return run_checklist(load_settings(c.config), decl)


async def run_plan(
    plan: EvalPlan,
    *,
    tokenizers: dict[str, Tokenizer],
    api_key: str | None = None,
    cache: ResponseCache | None = None,
    on_item: Callable[[], None] | None = None,
    scenarios: Mapping[str, ScenarioFactory] = SCENARIOS,
) -> dict[str, Any]:
    """Run every part each candidate has inputs for; JSON-ready results."""
    candidates = []
    for c in plan.candidates:
        candidates.append(
            {
                "name": c.name,
                "endpoint": c.endpoint,
                "model": c.model,
                "capability": await _capability(
                    plan, c, tokenizers.get(c.name), api_key, cache, on_item
                ),
                "scenarios": await _scenarios(c, api_key, scenarios),
                "cost": await _cost(c, api_key),
                "compliance": await _compliance(c, api_key),
            }
        )
    return {
        "seed": plan.seed,
        "limit": plan.limit,
        "weights": plan.weights.model_dump(),
        "candidates": candidates,
    }
