"""``luodi support``: check assistant files, classify an utterance, evaluate intent recognition.

These run in this process on the configured models (the embedding model, and the
embedded engine for the model fallback unless ``--no-llm``); no server is needed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import typer

from luodi.apps.support.assistant import Assistant
from luodi.apps.support.classifier import Classification, FeatureChoice, LayerStates
from luodi.apps.support.evaluation import IntentReport, read_labelled, score
from luodi.apps.support.judge import IntentJudge
from luodi.apps.support.loading import load_assistant
from luodi.apps.support.recognizer import IntentRecognizer
from luodi.config import Settings, load_settings
from luodi.errors import ConfigError, LuodiError

__all__ = ["app"]

app = typer.Typer(
    help="Customer-service assistants: check, classify, evaluate.", no_args_is_help=True
)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="luodi YAML config file.")]
AssistantOpt = Annotated[
    Path,
    typer.Option(
        "--assistant",
        help="Assistant YAML file, or a name in support.assistants_dir.",
        show_default=False,
    ),
]
NoLlmOpt = Annotated[
    bool, typer.Option("--no-llm", help="Nearest examples only; never ask the model.")
]


def _fail(exc: LuodiError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(2 if isinstance(exc, ConfigError) else 1)


def _assistant(settings: Settings, where: Path) -> Assistant:
    """A file path, or the name of a file in the configured folder."""
    if where.suffix in (".yaml", ".yml") or where.exists():
        return load_assistant(where)
    folder = settings.support.assistants_dir
    for suffix in (".yaml", ".yml"):
        if folder is not None and (folder / f"{where}{suffix}").is_file():
            return load_assistant(folder / f"{where}{suffix}")
    raise ConfigError(f"no assistant file {where} (and none named so in support.assistants_dir)")


@asynccontextmanager
async def _recognizer(settings: Settings, use_llm: bool) -> AsyncIterator[IntentRecognizer]:
    """The recognizer on the configured embedder, and on the embedded engine if asked."""
    from luodi.apps.support.model_states import ModelStates
    from luodi.engine.embeddings import build_embedder
    from luodi.engine.llamacpp.default_model import resolve_model_path
    from luodi.engine.llamacpp.factory import build_embedded

    embedder = build_embedder(settings.embeddings)
    engine = None
    if use_llm and settings.support.llm_fallback:
        engine = build_embedded(settings.engine)
        await engine.start()
    readers = ModelStates(settings.support)

    def states(_assistant: Assistant) -> LayerStates | None:
        # The first layer reads the engine's model even where the judge is not asked.
        if engine is not None:
            return readers.for_engine(engine)
        try:
            path = resolve_model_path(settings.engine.model, settings.engine.cache_dir)
        except LuodiError:
            return None
        return readers.for_file(path, path.stat().st_size)

    try:
        judge = IntentJudge(engine, engine.info.name) if engine is not None else None
        yield IntentRecognizer(settings.support, lambda: embedder, lambda _a: judge, states)
    finally:
        readers.close()
        if engine is not None:
            await engine.stop()


@app.command("check")
def check(assistant: AssistantOpt, config: ConfigOpt = None) -> None:
    """Validate an assistant file: prints its intents, or a one-line error naming the line."""
    try:
        loaded = _assistant(load_settings(config), assistant)
    except LuodiError as exc:
        raise _fail(exc) from exc
    names = ", ".join(i.name for i in loaded.intents)
    typer.echo(f"{loaded.model_name}: {len(loaded.intents)} intents ({names})")


@app.command("classify")
def classify(
    text: Annotated[str, typer.Argument(help="The utterance to classify.")],
    assistant: AssistantOpt,
    config: ConfigOpt = None,
    no_llm: NoLlmOpt = False,
) -> None:
    """Print the intent of TEXT as JSON: intent, confidence, alternatives, path."""
    try:
        settings = load_settings(config)
        loaded = _assistant(settings, assistant)

        async def run() -> Classification:
            async with _recognizer(settings, not no_llm) as recognizer:
                return await recognizer.classify(loaded, text, use_llm=not no_llm)

        result = asyncio.run(run())
    except LuodiError as exc:
        raise _fail(exc) from exc
    typer.echo(json.dumps(result.wire(), ensure_ascii=False))


def _print(report: IntentReport) -> None:
    typer.echo(
        f"utterances {report.total}  accuracy {report.accuracy:.4f}  macro-F1 "
        f"{report.macro_f1:.4f}  out-of-scope precision {report.oos_precision:.4f} "
        f"recall {report.oos_recall:.4f}  calibration error {report.calibration_error:.4f}"
    )
    for path, numbers in sorted(report.paths.items()):
        typer.echo(
            f"path {path}: {numbers['share']:.1%} of utterances, accuracy "
            f"{numbers['accuracy']:.4f}, mean confidence {numbers['mean_confidence']:.4f}"
        )
    typer.echo(f"latency ms p50 {report.latency_ms['p50']}  p95 {report.latency_ms['p95']}")
    labels = sorted(report.confusion)
    short = {label: label[:6] for label in labels}
    typer.echo("confusion (rows: gold, columns: predicted)")
    typer.echo(" " * 18 + " ".join(f"{short[c]:>6}" for c in labels))
    for gold in labels:
        row = report.confusion[gold]
        cells = " ".join(f"{row.get(c, 0) or '.':>6}" for c in labels)
        typer.echo(f"{gold[:17]:<18}{cells}")


@app.command("eval")
def evaluate(
    assistant: AssistantOpt,
    data: Annotated[Path, typer.Option("--data", help="Labelled JSONL: text, intent per line.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report here as JSON.")
    ] = None,
    config: ConfigOpt = None,
    no_llm: NoLlmOpt = False,
) -> None:
    """Accuracy, macro-F1, out-of-scope precision/recall and a confusion matrix."""
    try:
        settings = load_settings(config)
        loaded = _assistant(settings, assistant)
        gold = read_labelled(data)

        async def run() -> tuple[FeatureChoice, list[Classification]]:
            async with _recognizer(settings, not no_llm) as recognizer:
                model = await asyncio.to_thread(recognizer.model_for, loaded)
                out = []
                for n, g in enumerate(gold, start=1):
                    out.append(
                        await recognizer.classify(
                            loaded, g.text, use_llm=not no_llm, deadline=False
                        )
                    )
                    if n % 50 == 0:
                        typer.echo(f"... {n}/{len(gold)}", err=True)
                return model.choice, out

        started = time.perf_counter()
        choice, predicted = asyncio.run(run())
        report = score(gold, predicted)
    except LuodiError as exc:
        raise _fail(exc) from exc
    report.meta = {
        "assistant": loaded.name,
        "data": str(data),
        "embedding_model": settings.embeddings.model,
        "llm": None
        if no_llm or not settings.support.llm_fallback
        else str(settings.engine.model or "default (gemma-3-270m)"),
        "accept_confidence": settings.support.accept_confidence,
        "examples": sum(len(i.examples) for i in loaded.intents),
        # What cross-validation on the assistant's own examples chose, and its accuracy.
        "features": choice.wire(),
        "seconds": round(time.perf_counter() - started, 2),
    }
    _print(report)
    out = output or Path("benchmarks/results") / f"support_eval_{loaded.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.wire(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    typer.echo(f"wrote {out}")
