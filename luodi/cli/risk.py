"""``luodi risk train|score|eval|explain``: fraud scoring from the shell.

Learners and decisions live in ``risk.data_dir``, as the server keeps them; decisions
scored here are audited in the same chain, as the local operator. The LLM learners
call their chat and embedding models through a luodi server's gateway (``--server``),
never an engine directly; without ``--server`` the probe embeds with the configured
embedding model in process (vectors only, no text leaves).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from luodi.apps.risk.clients import HttpChat, HttpEmbeddings, LocalEmbeddings
from luodi.apps.risk.evaluation import evaluate_learners
from luodi.apps.risk.learners import LEARNERS, Tools, build_learner
from luodi.apps.risk.service import Caller, RiskService
from luodi.apps.risk.tables import load_cases, load_labelled
from luodi.config import Settings, load_settings
from luodi.errors import ConfigError, LuodiError
from luodi.security import Gateway
from luodi.security.audit import AuditFilter
from luodi.security.operator import open_gateway, operator_principal

__all__ = ["app"]

app = typer.Typer(help="Fraud scoring: train learners, score cases, evaluate, explain.")
out = Console()

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="luodi YAML config file.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Risk model name.")]
DataOpt = Annotated[Path, typer.Option("--data", help="CSV, Parquet, JSON or JSONL cases.")]
IdOpt = Annotated[str, typer.Option("--id-column", help="Column holding the case id.")]
ServerOpt = Annotated[
    str | None,
    typer.Option("--server", help="luodi server whose gateway the LLM learners call."),
]
KeyOpt = Annotated[
    str | None, typer.Option("--api-key", envvar="LUODI_API_KEY", help="Key for --server.")
]
ChatOpt = Annotated[
    str | None, typer.Option("--llm", help="Chat model on --server (default: risk.llm_model).")
]
EmbedOpt = Annotated[
    str | None,
    typer.Option("--embedding-model", help="Embedding model (default: risk.embedding_model)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _fail(exc: LuodiError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(2 if isinstance(exc, ConfigError) else 1)


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except LuodiError as exc:
        raise _fail(exc) from exc


def _clean(value: Any) -> Any:
    """NaN as null, so the JSON is strict."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _dump(data: Any) -> None:
    typer.echo(json.dumps(_clean(data), indent=2, ensure_ascii=False))


@asynccontextmanager
async def _tools(
    settings: Settings,
    server: str | None,
    api_key: str | None,
    llm: str | None,
    embedding_model: str | None,
    learners: list[str],
) -> AsyncIterator[Tools]:
    """The chat and embedding models ``learners`` need, through ``server`` when given."""
    needs = [build_learner(n, settings.risk) for n in learners]
    chat_name = llm or settings.risk.llm_model
    embed_name = embedding_model or settings.risk.embedding_model
    tools = Tools()
    closers: list[Any] = []
    if any(n.uses_chat for n in needs):
        if server is None or chat_name is None:
            raise ConfigError(
                "the incontext learner asks its LLM through a luodi server's gateway: "
                "pass --server URL, --llm MODEL (or set risk.llm_model) and --api-key"
            )
        tools.chat = HttpChat(server, chat_name, api_key)
        closers.append(tools.chat)
    if any(n.uses_embeddings for n in needs):
        if server is not None and embed_name is not None:
            tools.embeddings = HttpEmbeddings(server, embed_name, api_key)
            closers.append(tools.embeddings)
        else:
            from luodi.engine.embeddings import build_embedder

            tools.embeddings = LocalEmbeddings(build_embedder(settings.embeddings))
    try:
        yield tools
    finally:
        for client in closers:
            await client.aclose()


@asynccontextmanager
async def _service(config: Path | None) -> AsyncIterator[tuple[Settings, RiskService, Gateway]]:
    """The risk service over ``risk.data_dir``, auditing into the configured chain."""
    settings = load_settings(config)
    async with open_gateway(config) as gateway:
        yield settings, RiskService(settings.risk, audit=gateway.audit), gateway


def _learner_names(values: list[str] | None, default: list[str]) -> list[str]:
    names = [n.strip() for v in values or [] for n in v.split(",") if n.strip()] or default
    unknown = [n for n in names if n not in LEARNERS]
    if unknown:
        raise typer.BadParameter(f"unknown learner {unknown[0]!r}; known: {', '.join(LEARNERS)}")
    return names


@app.command()
def train(
    data: DataOpt,
    label: Annotated[str, typer.Option("--label", help="Column holding the 0/1 label.")],
    learner: Annotated[
        list[str] | None,
        typer.Option("--learner", "-l", help="incontext|probe|logreg|gbdt (repeat or comma)."),
    ] = None,
    model: ModelOpt = "default",
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace the labelled set instead of adding.")
    ] = False,
    id_column: IdOpt = "id",
    config: ConfigOpt = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    llm: ChatOpt = None,
    embedding_model: EmbedOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train learners on labelled cases (added to the model's labelled set)."""

    async def go() -> dict[str, Any]:
        async with _service(config) as (settings, service, _gateway):
            names = _learner_names(learner, [settings.risk.default_learner])
            cases = load_labelled(data, label=label, id_column=id_column)
            async with _tools(settings, server, api_key, llm, embedding_model, names) as tools:
                caller = Caller(operator_principal(), "luodi risk train")
                return await service.train(
                    model, cases, names, tools, replace=replace, caller=caller
                )

    report = _run(go())
    if as_json:
        _dump(report)
        return
    table = Table(title=f"risk model {report['model']} · {report['labelled_set']}")
    for column in ("learner", "fit s", "cases", "cv AUC"):
        table.add_column(column)
    for name, entry in report["learners"].items():
        cv = entry["cv_auc"]
        table.add_row(
            name,
            f"{entry['fit_seconds']:.2f}",
            str(entry["trained_on"]),
            "-" if cv is None else f"{cv:.3f}",
        )
    out.print(table)
    out.print(f"labels: {report['labels']['1']} fraud, {report['labels']['0']} not fraud")


@app.command()
def score(
    data: DataOpt,
    model: ModelOpt = "default",
    learner: Annotated[str | None, typer.Option("--learner", "-l", help="Learner.")] = None,
    id_column: IdOpt = "id",
    config: ConfigOpt = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    llm: ChatOpt = None,
    embedding_model: EmbedOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score cases; every decision is kept and audited (``luodi risk explain``)."""

    async def go() -> list[dict[str, Any]]:
        async with _service(config) as (settings, service, _gateway):
            cases = load_cases(data, id_column=id_column)
            chosen, _ = service.learner(model, learner)
            async with _tools(settings, server, api_key, llm, embedding_model, [chosen.name]) as t:
                answers = await service.score(
                    model,
                    cases,
                    t,
                    learner=chosen.name,
                    caller=Caller(operator_principal(), "luodi risk score"),
                )
                return [a.model_dump() for a in answers]

    answers = _run(go())
    if as_json:
        _dump(answers)
        return
    table = Table()
    for column in ("id", "score", "probability", "decision", "reasons", "decision id"):
        table.add_column(column)
    for a in answers:
        reasons = ", ".join(r["feature"] for r in a["reasons"])
        table.add_row(
            a["id"],
            str(a["risk_score"]),
            f"{a['probability']:.3f}",
            a["decision"],
            reasons,
            a["decision_id"],
        )
    out.print(table)


@app.command("eval")
def evaluate(
    data: DataOpt,
    label: Annotated[str, typer.Option("--label", help="Column holding the 0/1 label.")],
    model: ModelOpt = "default",
    learner: Annotated[
        list[str] | None, typer.Option("--learner", "-l", help="Learners (default: all trained).")
    ] = None,
    review_rate: Annotated[
        float, typer.Option("--review-rate", min=0.001, max=1.0, help="Share of cases reviewed.")
    ] = 0.05,
    id_column: IdOpt = "id",
    config: ConfigOpt = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    llm: ChatOpt = None,
    embedding_model: EmbedOpt = None,
    output: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON result here.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """AUC, PR-AUC, recall at a review rate and Brier score, per trained learner."""

    async def go() -> dict[str, Any]:
        settings = load_settings(config)
        service = RiskService(settings.risk)  # measuring: no decision is kept or audited
        trained = sorted(service.describe(model)["learners"])
        names = _learner_names(learner, trained)
        cases = load_labelled(data, label=label, id_column=id_column)
        learners = [service.learner(model, n)[0] for n in names]
        async with _tools(settings, server, api_key, llm, embedding_model, names) as tools:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=Console(stderr=True),
            ) as bar:
                tasks = {n: bar.add_task(n, total=len(cases)) for n in names}
                result = await evaluate_learners(
                    learners,
                    cases,
                    tools,
                    review_rate=review_rate,
                    progress=lambda name, done: bar.advance(tasks[name], done),
                )
        result["model"] = model
        return result

    result = _clean(_run(go()))
    if output is not None:
        output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if as_json:
        _dump(result)
        return
    rate = f"recall@{result['review_rate']:.0%}"
    table = Table(title=f"{model}: {result['n']} cases, {result['positives']} fraud")
    for column in ("learner", "AUC", "PR-AUC", rate, "Brier", "ms/case"):
        table.add_column(column)
    for name, m in result["learners"].items():
        cells = [m["auc"], m["pr_auc"], m["recall_at_review"], m["brier"]]
        table.add_row(
            name,
            *("-" if v is None else f"{v:.3f}" for v in cells),
            f"{m['latency_ms_per_case']:.1f}",
        )
    out.print(table)


def _audit_record(gateway: Gateway, decision_id: str) -> dict[str, Any] | None:
    for record in gateway.audit_log.iter_records(AuditFilter()):
        if record.get("kind") != "risk.decision" or decision_id not in (
            record.get("detail_json") or ""
        ):
            continue
        detail = json.loads(record["detail_json"])
        if detail.get("decision_id") == decision_id:
            return {"seq": record["seq"], "time": record["time"], "user": record["user"], **detail}
    return None


@app.command()
def explain(
    decision_id: Annotated[str, typer.Argument(help="The decision id a score returned.")],
    config: ConfigOpt = None,
    server: ServerOpt = None,
    api_key: KeyOpt = None,
    llm: ChatOpt = None,
    embedding_model: EmbedOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a decision as the audit chain holds it, and replay it: exit 1 if it differs."""

    async def go() -> dict[str, Any]:
        async with _service(config) as (settings, service, gateway):
            record = _audit_record(gateway, decision_id)
            kept = service.store.decision(decision_id)
            if record is None:
                raise LuodiError(f"decision {decision_id} is not in the audit chain")
            if record["inputs_sha256"] != kept["inputs_sha256"]:
                raise LuodiError(
                    f"decision {decision_id}: the kept case does not match the audit record"
                )
            async with _tools(
                settings, server, api_key, llm, embedding_model, [record["learner"]]
            ) as t:
                replay = await service.replay(decision_id, t)
            return {"audit": record, **replay}

    result = _run(go())
    if as_json:
        _dump(result)
    else:
        audit, original, replayed = result["audit"], result["original"], result["replayed"]
        out.print(
            f"decision {decision_id} (audit seq {audit['seq']}, {audit['time']}, "
            f"by {audit['user']})\n"
            f"model {result['risk_model']} · learner {result['learner']} · labelled set "
            f"{result['labelled_set']} · inputs {result['inputs_sha256'][:16]}…"
        )
        out.print(
            f"recorded: {original['decision']} score {original['risk_score']} "
            f"p={original['probability']:.4f}\nreplayed: {replayed['decision']} score "
            f"{replayed['risk_score']} p={replayed['probability']:.4f}"
        )
        for reason in original["reasons"]:
            out.print(f"  [{reason['feature']}] {reason['evidence']}", markup=False)
        out.print("replay matches" if result["matches"] else "replay DIFFERS")
    if not result["matches"]:
        raise typer.Exit(1)
