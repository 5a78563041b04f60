"""``luodi eval``: capability, cost (TCO) and compliance of endpoints; run a plan, report."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from luodi.config import load_settings
from luodi.errors import ConfigError
from luodi.evaluation.cache import ResponseCache
from luodi.evaluation.capability import CapabilityResult, run_generate, run_loglikelihood
from luodi.evaluation.compliance import Declarations, probe_server, run_checklist
from luodi.evaluation.cost import CostModel, load_prices, measured_throughput
from luodi.evaluation.endpoint import Endpoint
from luodi.evaluation.generation import DEFAULT_RUBRIC, Judge, run_generation
from luodi.evaluation.perplexity import perplexity as measure_perplexity
from luodi.evaluation.plan import load_plan, run_plan
from luodi.evaluation.report import render_html, summarise
from luodi.evaluation.scoring import ChatChooser, ChoiceScorer, EchoScorer, ForcedTokenScorer
from luodi.evaluation.tasks import Task, load_task
from luodi.models.memory import model_memory

__all__ = [
    "app",
    "capability",
    "compliance",
    "cost",
    "gguf_tokenizer",
    "perplexity",
    "report",
    "run",
]

app = typer.Typer(no_args_is_help=True)
console = Console(stderr=True)


def gguf_tokenizer(path: Path) -> Callable[[str, bool], list[int]]:
    """A GGUF file's tokenizer alone (vocab only: no weights are loaded)."""
    import llama_cpp

    if not path.is_file():
        raise ConfigError(f"{path}: no such tokenizer GGUF")
    vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)

    def tokenize(text: str, add_special: bool) -> list[int]:
        return list(vocab.tokenize(text.encode("utf-8"), add_bos=add_special, special=True))

    return tokenize


@app.command()
def capability(
    task: Annotated[Path, typer.Option(help="Task JSONL (question, choices, answer).")],
    mode: Annotated[str, typer.Option(help="loglikelihood (/v1/completions) or generate (chat).")],
    out: Annotated[Path, typer.Option(help="Where to write RESULT.json.")],
    endpoint: Annotated[
        str | None, typer.Option(help="Base URL of an OpenAI-compatible server.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name the endpoint serves.")] = None,
    local: Annotated[
        bool,
        typer.Option(
            help="Score the embedded engine in this process instead of an endpoint"
            " (--model-file, else the configured or default model; PII masking off)."
        ),
    ] = False,
    model_file: Annotated[
        Path | None, typer.Option(help="GGUF for --local (default: engine.model).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="luodi config for --local.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Score only the first N items.")] = None,
    definition: Annotated[
        Path | None, typer.Option(help="YAML task definition (default: <task>.yaml if any).")
    ] = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            help="GGUF whose tokenizer forces continuation tokens one by one, for endpoints"
            " that score generated tokens only; without it, echo + logprobs."
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed sent with every request.")] = 1234,
    cache: Annotated[
        Path | None, typer.Option(help="Answer cache (SQLite; default: <out>.cache.sqlite).")
    ] = None,
    no_cache: Annotated[bool, typer.Option(help="Ask the endpoint again for everything.")] = False,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="LUODI_API_KEY", help="Bearer key (also LUODI_API_KEY).", show_default=False
        ),
    ] = None,
) -> None:
    """Score a multiple-choice task: acc (and acc_norm), n, predictions in file order."""
    if mode not in ("loglikelihood", "generate"):
        raise ConfigError(f"--mode must be loglikelihood or generate, got {mode!r}")
    loaded = load_task(task, definition)
    store = None if no_cache else ResponseCache(cache or out.with_name(out.name + ".cache.sqlite"))
    with contextlib.ExitStack() as stack:
        identity = None
        if local:
            endpoint, model, tokenizer = stack.enter_context(_local_engine(config, model_file))
            identity = f"local:{tokenizer.resolve()}"
        elif endpoint is None or model is None:
            raise ConfigError("give --endpoint and --model, or --local")
        _score_capability(
            loaded,
            mode,
            endpoint,
            model,
            tokenizer,
            limit,
            concurrency,
            seed,
            store,
            api_key,
            out,
            identity,
        )


@contextlib.contextmanager
def _local_engine(config: Path | None, model_file: Path | None) -> Iterator[tuple[str, str, Path]]:
    """The embedded engine served in this process on loopback: URL, model name, GGUF.

    PII masking is off: it would rewrite the questions (or refuse token-id prompts),
    and the model is what is measured. Nothing leaves the machine.
    """
    import httpx

    from luodi.cli.local_server import LocalServer, local_settings
    from luodi.engine.llamacpp.default_model import default_model_path

    settings = local_settings(load_settings(config), model_file)
    data = settings.model_dump()
    data["privacy"]["enabled"] = False
    settings = type(settings).model_validate(data)
    gguf = settings.engine.model or default_model_path(settings.engine.cache_dir)
    with LocalServer(settings) as server:
        name = str(httpx.get(f"{server.url}/v1/models", timeout=30).json()["data"][0]["id"])
        yield server.url, name, Path(gguf)


def _score_capability(
    loaded: Task,
    mode: str,
    endpoint: str,
    model: str,
    tokenizer: Path | None,
    limit: int | None,
    concurrency: int,
    seed: int,
    store: ResponseCache | None,
    api_key: str | None,
    out: Path,
    identity: str | None,
) -> None:
    total = min(limit, len(loaded.items)) if limit is not None else len(loaded.items)
    tokenize = gguf_tokenizer(tokenizer) if tokenizer is not None else None

    async def go() -> CapabilityResult:
        client = Endpoint(
            endpoint,
            model,
            api_key=api_key,
            concurrency=concurrency,
            cache=store,
            identity=identity,
        )
        try:
            with Progress(
                TextColumn(f"[bold]{loaded.name} · {mode}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                bar = progress.add_task("items", total=total)

                def tick() -> None:
                    progress.advance(bar)

                if mode == "generate":
                    return await run_generate(
                        loaded, ChatChooser(client, seed=seed), limit=limit, on_item=tick
                    )
                scorer: ChoiceScorer = (
                    ForcedTokenScorer(client, tokenize, seed=seed)
                    if tokenize is not None
                    else EchoScorer(client, seed=seed)
                )
                return await run_loglikelihood(
                    loaded, scorer, client, limit=limit, seed=seed, on_item=tick
                )
        finally:
            await client.aclose()

    try:
        result = asyncio.run(go())
    finally:
        if store is not None:
            store.close()
    _write_json(out, result.to_json())
    norm = f"  acc_norm {result.acc_norm:.3f}" if result.acc_norm is not None else ""
    console.print(
        f"{loaded.name} ({mode}, n={result.n}): acc {result.acc:.3f}{norm}"
        f"  [{result.requests_sent} requests, {result.cache_hits} cached] → {out}"
    )


@app.command()
def cost(
    bench: Annotated[Path, typer.Option(help="A `luodi bench` JSON file (measured tokens/s).")],
    out: Annotated[Path, typer.Option(help="Where to write the cost JSON.")],
    prices: Annotated[
        Path | None, typer.Option(help="Price sheet YAML (default: the bundled, dated one).")
    ] = None,
    gguf: Annotated[
        Path | None, typer.Option(help="GGUF file: weight and KV bytes, what fits.")
    ] = None,
    kv_type: Annotated[str, typer.Option(help="KV cache type the server runs.")] = "q8_0",
    memory_gb: Annotated[
        float, typer.Option(help="GPU or RAM size for the sequences-that-fit figure.")
    ] = 141.0,
    sequence_tokens: Annotated[int, typer.Option(min=1, help="Tokens per sequence.")] = 4096,
    volume: Annotated[
        list[float] | None,
        typer.Option(help="Output tokens/day to price (repeat; default 1e5..1e10)."),
    ] = None,
) -> None:
    """Cost per million tokens private vs API, break-even volume, and model memory."""
    sheet = load_prices(prices)
    peak, concurrency, bench_model = measured_throughput(bench)
    model = CostModel(sheet, peak)
    volumes = volume or [10.0**e for e in range(5, 11)]
    result = model.summary(volumes) | {
        "bench": {"file": str(bench), "model": bench_model, "best_concurrency": concurrency}
    }
    if gguf is not None:
        mem = model_memory(gguf, kv_type=kv_type)
        result["memory"] = mem.to_json() | {
            "memory_bytes": memory_gb * 1e9,
            "sequence_tokens": sequence_tokens,
            "sequences_that_fit": mem.sequences_that_fit(memory_gb * 1e9, sequence_tokens),
        }
    _write_json(out, result)

    cur = sheet.currency
    table = Table(title=f"luodi eval cost (prices of {sheet.taken_on}, {cur})")
    for col in ("output tokens/day", "private", "hybrid", "api"):
        table.add_column(col, justify="right")
    for row in result["daily_cost_by_volume"]:
        table.add_row(
            f"{row['output_tokens_per_day']:.3g}",
            *(f"{row[m]:,.2f}" for m in ("private", "hybrid", "api")),
        )
    out_console = Console()
    out_console.print(table)
    per_m = result["per_million_output_tokens"]
    even = result["break_even_output_tokens_per_day"]
    out_console.print(
        f"measured {peak:.1f} output tok/s (concurrency {concurrency}) at"
        f" {sheet.workload.target_utilisation:.0%}: {model.capacity_per_day:.3g} tokens/day;"
        f" per million output tokens: private {per_m['private']:.2f}, api {per_m['api']:.2f} {cur}"
    )
    out_console.print(
        f"break-even: {even:.3g} output tokens/day"
        if even is not None
        else "break-even: none; one server at target utilisation costs more than the API"
    )
    if gguf is not None:
        m = result["memory"]
        out_console.print(
            f"{m['file']}: {m['parameters'] / 1e9:.2f}B params, weights"
            f" {m['weight_bytes'] / 1e9:.2f} GB ({m['bits_per_weight']:.2f} bits/weight;"
            f" F16 {m['weights_as']['f16'] / 1e9:.2f} GB), KV {m['kv_bytes_per_token']:.0f}"
            f" B/token ({kv_type}; without GQA {m['kv_bytes_per_token_without_gqa']:.0f});"
            f" {m['sequences_that_fit']} sequences of {sequence_tokens} tokens fit in"
            f" {memory_gb:g} GB"
        )
    out_console.print(f"written to {out}")


def _declarations(path: Path | None, audit_report: Path | None) -> Declarations:
    import yaml  # type: ignore[import-untyped]

    raw: dict[str, object] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read declarations ({exc})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: declarations must be a mapping")
        known = {"tls_terminated_by", "backups", "cross_border_basis"}
        unknown = sorted(set(loaded) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
        raw.update({k: str(v) for k, v in loaded.items() if v is not None})
    if audit_report is not None:
        try:
            raw["audit_verified"] = json.loads(audit_report.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{audit_report}: not a luodi audit verify --json report") from exc
    return Declarations(**raw)  # type: ignore[arg-type]


@app.command()
def compliance(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="luodi YAML config (also LUODI_CONFIG)."),
    ] = None,
    declarations: Annotated[
        Path | None,
        typer.Option(help="YAML: tls_terminated_by, backups, cross_border_basis."),
    ] = None,
    audit_report: Annotated[
        Path | None, typer.Option(help="Output of `luodi audit verify --json`.")
    ] = None,
    server: Annotated[
        str | None, typer.Option(help="A running luodi to probe without a key (LIVE_AUTH).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="LUODI_API_KEY",
            help="With --server: an administrator's key, to read /admin metadata too.",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write the JSON.")] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 when any control fails.")] = False,
) -> None:
    """Controls read from the live settings, mapped to MLPS 2.0 L3, ISO 27001, GDPR."""
    decl = _declarations(declarations, audit_report)
    if server is not None:
        decl = replace(decl, server_probe=probe_server(server, api_key=api_key))
    result = run_checklist(load_settings(config), decl)
    table = Table(title="luodi eval compliance (control coverage, not certification)")
    for col in ("control", "status", "evidence", "fix", "MLPS 2.0 L3", "ISO 27001:2022", "GDPR"):
        table.add_column(col, overflow="fold")
    colour = {"pass": "green", "fail": "red", "n.a.": "dim"}
    for c in result["controls"]:
        table.add_row(
            c["id"],
            f"[{colour[c['status']]}]{c['status']}[/]",
            c["evidence"],
            c["fix"],
            c["mlps"],
            c["iso27001"],
            c["gdpr"],
        )
    out_console = Console()
    out_console.print(table)
    counts = result["counts"]
    out_console.print(
        f"{counts['pass']} pass, {counts['fail']} fail, {counts['n.a.']} n.a. — "
        + result["disclaimer"]
    )
    if out is not None:
        _write_json(out, result)
    if strict and counts["fail"]:
        raise typer.Exit(1)


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="Eval plan YAML.")],
    out: Annotated[Path, typer.Option(help="Where to write the results JSON.")] = Path(
        "eval-results/results.json"
    ),
    cache: Annotated[
        Path | None, typer.Option(help="Answer cache (default: <out>.cache.sqlite).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="LUODI_API_KEY", help="Bearer key for the endpoints.", show_default=False
        ),
    ] = None,
) -> None:
    """Run a plan: capability, cost and compliance for each candidate it names."""
    plan = load_plan(config)
    tokenizers = {c.name: gguf_tokenizer(c.tokenizer) for c in plan.candidates if c.tokenizer}
    store = ResponseCache(cache or out.with_name(out.name + ".cache.sqlite"))
    try:
        with Progress(
            TextColumn("[bold]luodi eval run"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            bar = progress.add_task("items", total=None)
            results = asyncio.run(
                run_plan(
                    plan,
                    tokenizers=tokenizers,
                    api_key=api_key,
                    cache=store,
                    on_item=lambda: progress.advance(bar),
                )
            )
    finally:
        store.close()
    _write_json(out, results)
    console.print(f"results written to {out}; next: luodi eval report --results {out}")


@app.command()
def report(
    results: Annotated[Path, typer.Option(help="Results JSON from `luodi eval run`.")],
    out: Annotated[Path, typer.Option(help="Where to write the HTML report.")] = Path(
        "eval-results/report.html"
    ),
) -> None:
    """One self-contained HTML report (inline SVG) and its JSON summary beside it."""
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{results}: not a luodi eval run results file ({exc})") from None
    summary = summarise(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(data, summary), encoding="utf-8")
    summary_path = out.with_suffix(".json")
    _write_json(summary_path, {"summary": summary, "results": data})
    Console().print(f"pick: {summary['pick']} — {summary['why']}\nwritten {out}, {summary_path}")


@app.command()
def perplexity(
    endpoint: Annotated[str, typer.Option(help="Base URL of an OpenAI-compatible server.")],
    model: Annotated[str, typer.Option(help="Model name the endpoint serves.")],
    text: Annotated[Path, typer.Option(help="UTF-8 text file to score.")],
    out: Annotated[Path, typer.Option(help="Where to write the JSON.")],
    tokenizer: Annotated[
        Path | None,
        typer.Option(help="GGUF tokenizer: forced-token scoring; else echo + logprobs."),
    ] = None,
    chunk_chars: Annotated[int, typer.Option(min=64, help="Characters per chunk.")] = 2000,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 4,
    cache: Annotated[
        Path | None, typer.Option(help="Answer cache (default: <out>.cache.sqlite).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="LUODI_API_KEY", help="Bearer key.", show_default=False),
    ] = None,
) -> None:
    """Byte and word perplexity of a text (compare quantisations of one model)."""
    try:
        content = text.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{text}: cannot read as UTF-8 text ({exc})") from None
    store = ResponseCache(cache or out.with_name(out.name + ".cache.sqlite"))
    tokenize = gguf_tokenizer(tokenizer) if tokenizer is not None else None

    async def go() -> dict[str, object]:
        client = Endpoint(endpoint, model, api_key=api_key, concurrency=concurrency, cache=store)
        try:
            scorer: ChoiceScorer = (
                ForcedTokenScorer(client, tokenize) if tokenize else EchoScorer(client)
            )
            result = await measure_perplexity(scorer, content, chunk_chars=chunk_chars)
            return result.to_json() | {"model": model, "text": str(text)}
        finally:
            await client.aclose()

    try:
        data = asyncio.run(go())
    finally:
        store.close()
    _write_json(out, data)
    console.print(
        f"{text.name}: byte perplexity {data['byte_perplexity']:.4f}, bits/byte"
        f" {data['bits_per_byte']:.4f}, word perplexity {data['word_perplexity']:.2f} → {out}"
    )


@app.command()
def generation(
    endpoint: Annotated[str, typer.Option(help="Base URL of an OpenAI-compatible server.")],
    model: Annotated[str, typer.Option(help="Model name the endpoint serves.")],
    task: Annotated[Path, typer.Option(help="Task JSONL (question, answer or answers).")],
    out: Annotated[Path, typer.Option(help="Where to write RESULT.json.")],
    limit: Annotated[int | None, typer.Option(help="Ask only the first N items.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most tokens per answer.")] = 32,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed sent with every request.")] = 1234,
    cache: Annotated[
        Path | None, typer.Option(help="Answer cache (default: <out>.cache.sqlite).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="LUODI_API_KEY", help="Bearer key.", show_default=False),
    ] = None,
    judge_endpoint: Annotated[
        str | None, typer.Option(help="LLM-as-judge: the judge's base URL.")
    ] = None,
    judge_model: Annotated[str | None, typer.Option(help="The judge model's name.")] = None,
    judge_rubric: Annotated[
        Path | None, typer.Option(help="Rubric (system prompt) file; a built-in one otherwise.")
    ] = None,
) -> None:
    """Free-answer questions through chat: exact match (acc), token F1, optional judge."""
    if (judge_endpoint is None) != (judge_model is None):
        raise ConfigError("give both --judge-endpoint and --judge-model, or neither")
    rubric = judge_rubric.read_text(encoding="utf-8") if judge_rubric else DEFAULT_RUBRIC
    store = ResponseCache(cache or out.with_name(out.name + ".cache.sqlite"))

    async def go() -> CapabilityResult:
        client = Endpoint(endpoint, model, api_key=api_key, concurrency=concurrency, cache=store)
        judge = (
            Judge(
                Endpoint(judge_endpoint, judge_model, api_key=api_key, cache=store),
                rubric=rubric,
                seed=seed,
            )
            if judge_endpoint is not None and judge_model is not None
            else None
        )
        try:
            return await run_generation(
                task, client, limit=limit, seed=seed, max_tokens=max_tokens, judge=judge
            )
        finally:
            await client.aclose()
            if judge is not None:
                await judge.endpoint.aclose()

    try:
        result = asyncio.run(go())
    finally:
        store.close()
    _write_json(out, result.to_json())
    console.print(
        f"{task.stem} (generation, n={result.n}): exact match {result.acc:.3f},"
        f" F1 {result.f1 or 0:.3f}"
        + (
            f", judge {result.judge['model']} {result.judge['accuracy']:.3f}"
            if result.judge
            else ""
        )
        + f" → {out}"
    )


def _write_json(out: Path, value: object) -> None:
    """Write ``value`` as indented UTF-8 JSON to ``out``, making its folder."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
