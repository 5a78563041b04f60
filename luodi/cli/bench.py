"""``luodi bench``: drive a running server with concurrent streaming clients."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from luodi.errors import LuodiError
from luodi.evaluation.load import LevelResult, LoadConfig, run, run_level

__all__ = ["bench"]

console = Console()


def _resolve_model(url: str, api_key: str | None) -> str:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.get(f"{url}/v1/models", headers=headers, timeout=10)
        resp.raise_for_status()
        return str(resp.json()["data"][0]["id"])
    except (httpx.HTTPError, KeyError, IndexError) as exc:
        raise LuodiError(f"cannot list models at {url}: {exc}") from exc


def render_table(results: list[LevelResult], single: float | None = None) -> Table:
    table = Table(title="luodi bench: streaming completions")
    for col in (
        "conc",
        "reqs",
        "err",
        "tok/s",
        "vs 1",
        "per-stream decode tok/s",
        "TTFT p50/p95/p99 ms",
        "ITL p50/p95/p99 ms",
    ):
        table.add_column(col, justify="right")
    base = single or (results[0].throughput_tok_s if results else None)
    for r in results:
        ratio = f"{r.throughput_tok_s / base:.2f}x" if base else "-"
        table.add_row(
            str(r.concurrency),
            str(r.requests),
            str(r.errors),
            f"{r.throughput_tok_s:.1f}",
            ratio,
            f"{r.stream_decode_tok_s:.1f}",
            "/".join(f"{r.ttft_ms[k]:.0f}" for k in ("p50", "p95", "p99")),
            "/".join(f"{r.itl_ms[k]:.0f}" for k in ("p50", "p95", "p99")),
        )
    return table


def bench(
    url: Annotated[str, typer.Option(help="Server base URL.")] = "http://127.0.0.1:8000",
    model: Annotated[
        str | None, typer.Option(help="Model name (default: the first served).")
    ] = None,
    concurrency: Annotated[
        list[int] | None, typer.Option("--concurrency", "-n", help="Levels to sweep.")
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="Output tokens per request.")] = 64,
    requests_per_client: Annotated[int, typer.Option(help="Requests each client sends.")] = 2,
    api_key: Annotated[str | None, typer.Option(envvar="LUODI_API_KEY", help="Bearer key.")] = None,
    out: Annotated[Path, typer.Option(help="Where to write the JSON results.")] = Path(
        "bench-results/serving.json"
    ),
) -> None:
    """Sweep concurrency (default 1/4/16/32) and report throughput, TTFT and ITL."""
    levels = concurrency or [1, 4, 16, 32]
    if any(level < 1 for level in levels):
        raise LuodiError("concurrency levels must be positive")
    url = url.rstrip("/")
    name = model or _resolve_model(url, api_key)
    cfg = LoadConfig(
        base_url=url,
        model=name,
        max_tokens=max_tokens,
        requests_per_client=requests_per_client,
        api_key=api_key,
    )

    async def sweep() -> list[LevelResult]:
        results: list[LevelResult] = []
        total = sum(levels) * requests_per_client
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("warm-up", total=total)
            await run_level(replace(cfg, requests_per_client=1), 1)
            for level in levels:
                progress.update(task, description=f"concurrency {level}")
                results.append(await run_level(cfg, level, lambda: progress.advance(task)))
        return results

    results = run(sweep())
    if all(r.requests == 0 for r in results):
        raise LuodiError(f"every request to {url} failed")
    console.print(render_table(results))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "model": name,
                "url": url,
                "max_tokens": max_tokens,
                "levels": [r.as_dict() for r in results],
            },
            indent=2,
        )
    )
    console.print(f"results written to {out}")
