"""``luodi eval``: capability of any OpenAI-compatible endpoint (cost and compliance next)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from luodi.errors import ConfigError
from luodi.evaluation.cache import ResponseCache
from luodi.evaluation.capability import CapabilityResult, run_generate, run_loglikelihood
from luodi.evaluation.endpoint import Endpoint
from luodi.evaluation.scoring import ChatChooser, ChoiceScorer, EchoScorer, ForcedTokenScorer
from luodi.evaluation.tasks import load_task

__all__ = ["app", "capability", "gguf_tokenizer"]

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
    endpoint: Annotated[str, typer.Option(help="Base URL of an OpenAI-compatible server.")],
    model: Annotated[str, typer.Option(help="Model name the endpoint serves.")],
    task: Annotated[Path, typer.Option(help="Task JSONL (question, choices, answer).")],
    mode: Annotated[str, typer.Option(help="loglikelihood (/v1/completions) or generate (chat).")],
    out: Annotated[Path, typer.Option(help="Where to write RESULT.json.")],
    limit: Annotated[int | None, typer.Option(help="Score only the first N items.")] = None,
    definition: Annotated[
        Path | None, typer.Option(help="YAML task definition (default: <task>.yaml if any).")
    ] = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            help="GGUF whose tokenizer forces continuation tokens one by one, for endpoints"
            " without prompt logprobs (luodi's own); without it, echo + logprobs."
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
    total = min(limit, len(loaded.items)) if limit is not None else len(loaded.items)
    store = None if no_cache else ResponseCache(cache or out.with_name(out.name + ".cache.sqlite"))
    tokenize = gguf_tokenizer(tokenizer) if tokenizer is not None else None

    async def go() -> CapabilityResult:
        client = Endpoint(endpoint, model, api_key=api_key, concurrency=concurrency, cache=store)
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
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
    norm = f"  acc_norm {result.acc_norm:.3f}" if result.acc_norm is not None else ""
    console.print(
        f"{loaded.name} ({mode}, n={result.n}): acc {result.acc:.3f}{norm}"
        f"  [{result.requests_sent} requests, {result.cache_hits} cached] → {out}"
    )
