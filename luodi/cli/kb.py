"""``luodi kb create|list|ingest|search|sync|delete|jobs|watch|reembed``: knowledge bases
from the shell."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from luodi.config import load_settings
from luodi.config.embeddings import EmbeddingSettings
from luodi.config.knowledge import KnowledgeSettings
from luodi.errors import ConfigError, LuodiError
from luodi.knowledge import IngestReport, KnowledgeService
from luodi.knowledge.jobs import JobStatus
from luodi.knowledge.loaders import LOADERS

app = typer.Typer(help="Create, fill, search and sync knowledge bases.", no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="luodi YAML config file.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Override knowledge.data_dir.")]


def _fail(exc: LuodiError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(2 if isinstance(exc, ConfigError) else 1)


def _service(config: Path | None, data_dir: Path | None) -> KnowledgeService:
    from luodi.engine.embeddings import build_embedder

    settings = load_settings(config)
    knowledge: KnowledgeSettings = getattr(settings, "knowledge", None) or KnowledgeSettings()
    embeddings: EmbeddingSettings = getattr(settings, "embeddings", None) or EmbeddingSettings()
    if data_dir is not None:
        knowledge = knowledge.model_copy(update={"data_dir": data_dir})
    return KnowledgeService(
        knowledge, build_embedder(embeddings), redact=_redactor(settings, knowledge)
    )


def _redactor(settings: object, knowledge: KnowledgeSettings) -> Callable[[str], str] | None:
    """Mask documents with ``knowledge.pii_policy``, as the server does on upload."""
    if knowledge.pii_policy is None:
        return None
    from luodi.privacy import PIIStage

    stage = PIIStage.from_settings(settings.privacy)  # type: ignore[attr-defined]

    def redact(text: str) -> str:
        done = asyncio.run(
            stage.protect_text(
                text, policy=knowledge.pii_policy, conversation_id="knowledge-ingest"
            )
        )
        return done.text if done.text is not None else text

    return redact


class _Bars:
    """Files and chunks of an ingest as two rich progress bars; a ``Tracker``."""

    def __init__(self, bar: Progress, files: int) -> None:
        self._bar = bar
        self.files: TaskID = bar.add_task("files", total=files)
        self.chunks: TaskID = bar.add_task("chunks embedded", total=0)

    def files_found(self, count: int) -> None:
        self._bar.update(self.files, total=(self._bar.tasks[self.files].total or 0) + count)

    def planned(self, chunks: int) -> None:
        self._bar.update(self.chunks, total=(self._bar.tasks[self.chunks].total or 0) + chunks)

    def embedded(self, chunks: int) -> None:
        self._bar.update(self.chunks, advance=chunks)

    def document_done(self, name: str, error: str | None) -> None:
        self._bar.update(self.files, advance=1, description=name)


def _bars() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), transient=True
    )


def _print_report(report: IngestReport) -> None:
    typer.echo(
        f"added {len(report.added)}, updated {len(report.updated)}, "
        f"unchanged {len(report.unchanged)}, deleted {len(report.deleted)}, "
        f"failed {len(report.failed)}, chunks {report.chunks}"
    )
    for name, error in report.failed.items():
        typer.echo(f"failed: {name}: {error}", err=True)


@app.command()
def create(
    name: str,
    description: Annotated[str, typer.Option(help="What the collection holds.")] = "",
    tenant: Annotated[
        str, typer.Option(help="Tenant that owns it; empty: only kb managers see it.")
    ] = "",
    shared: Annotated[bool, typer.Option(help="Readable by every tenant's readers.")] = False,
    owner: Annotated[str, typer.Option(hidden=True, help="Old name of --tenant.")] = "",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create an empty knowledge base, owned by a tenant (or shared by all)."""
    try:
        _service(config, data_dir).create_collection(
            name, tenant or owner, description, shared=shared
        )
    except LuodiError as exc:
        raise _fail(exc) from exc
    typer.echo(f"created {name}")


@app.command()
def assign(
    name: str,
    tenant: Annotated[str | None, typer.Option(help="Give the collection to this tenant.")] = None,
    shared: Annotated[
        bool | None, typer.Option("--shared/--private", help="Share it with every tenant, or not.")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Give a collection a tenant (collections made before tenancy have none), or share it."""
    if tenant is None and shared is None:
        typer.echo("error: say --tenant, --shared or --private", err=True)
        raise typer.Exit(2)
    try:
        info = _service(config, data_dir).update_collection(
            name, caller=None, tenant=tenant, shared=shared
        )
    except LuodiError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{name}: tenant {info.tenant or '-'}, {'shared' if info.shared else 'private'}")


@app.command("list")
def list_(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List knowledge bases."""
    table = Table("name", "tenant", "shared", "documents", "chunks", "description")
    for info in _service(config, data_dir).list_collections():
        table.add_row(
            info.name,
            info.tenant or "-",
            "yes" if info.shared else "no",
            str(info.documents),
            str(info.chunks),
            info.description,
        )
    Console().print(table)


@app.command()
def ingest(
    name: str,
    paths: Annotated[list[Path], typer.Argument(help="Files or folders.")],
    access: Annotated[
        list[str] | None, typer.Option(help="Access tag, e.g. role:credit (repeat).")
    ] = None,
    meta: Annotated[str, typer.Option(help="Document metadata as a JSON object.")] = "{}",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Ingest files and folders into NAME, with a progress bar; unreadable files are listed."""
    service = _service(config, data_dir)
    files = [p for p in paths if p.is_file()]
    for folder in (p for p in paths if p.is_dir()):
        files += sorted(f for f in folder.rglob("*") if f.suffix.lower() in LOADERS)
    missing = [p for p in paths if not p.exists()]
    try:
        with _bars() as bar:
            report = service.ingest_paths(
                name,
                files,
                access=access or [],
                meta=json.loads(meta),
                tracker=_Bars(bar, len(files)),
            )
    except LuodiError as exc:
        raise _fail(exc) from exc
    for path in missing:
        report.failed[str(path)] = f"{path}: no such file or folder"
    _print_report(report)
    if report.failed:
        raise typer.Exit(1)


@app.command()
def search(
    name: str,
    query: str,
    top_k: Annotated[int, typer.Option(help="Passages to show.")] = 5,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Search NAME and print the best passages."""
    try:
        hits = _service(config, data_dir).search([name], query, top_k)
    except LuodiError as exc:
        raise _fail(exc) from exc
    for n, hit in enumerate(hits, start=1):
        typer.echo(f"[{n}] {hit.document} #{hit.position} ({hit.score:.4f})\n{hit.text}\n")


@app.command()
def source(
    name: str,
    locations: Annotated[list[str], typer.Argument(help="Folders, files or local URLs.")],
    schedule: Annotated[str | None, typer.Option(help="Cron, e.g. '0 3 * * 1'.")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Register a sync source of NAME; prints its id."""
    try:
        typer.echo(_service(config, data_dir).add_source(name, locations, schedule=schedule))
    except LuodiError as exc:
        raise _fail(exc) from exc


@app.command()
def sync(
    name: str,
    source_id: Annotated[str | None, typer.Option("--source", help="One source only.")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Sync NAME's sources now (incremental: only changed documents are re-indexed)."""
    service = _service(config, data_dir)
    ids = [source_id] if source_id else [s.id for s in service.sources(name)]
    try:
        for sid in ids:
            typer.echo(f"source {sid}:")
            _print_report(service.sync(sid, trigger="cli"))
    except LuodiError as exc:
        raise _fail(exc) from exc


@app.command()
def delete(
    name: str,
    document: Annotated[str | None, typer.Option(help="Document id to delete.")] = None,
    where: Annotated[
        str | None, typer.Option(help="Erase by metadata, KEY=VALUE (e.g. subject=u-42).")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Delete one document, or erase every document whose metadata matches (GDPR)."""
    service = _service(config, data_dir)
    try:
        if document:
            service.delete_document(name, document, actor="cli")
            typer.echo(f"deleted {document}")
        elif where and "=" in where:
            key, value = where.split("=", 1)
            n = service.erase(key, value, collections=[name], actor="cli")
            typer.echo(f"erased {n} documents")
        else:
            typer.echo("error: give --document ID or --where KEY=VALUE", err=True)
            raise typer.Exit(2)
    except LuodiError as exc:
        raise _fail(exc) from exc


def _job_line(job: JobStatus) -> str:
    return (
        f"{job.id} {job.kind} {job.state}: files {job.files_done}/{job.files_total}, "
        f"chunks {job.chunks_done}/{job.chunks_total}, failed {len(job.failed)}"
        + (f" ({job.error})" if job.error else "")
    )


@app.command()
def jobs(name: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List NAME's background jobs (API ingests, syncs, re-embeddings), newest first."""
    try:
        found = _service(config, data_dir).jobs(name)
    except LuodiError as exc:
        raise _fail(exc) from exc
    for job in found:
        typer.echo(_job_line(job))


@app.command()
def watch(
    name: str,
    job_id: str,
    interval: Annotated[float, typer.Option(help="Seconds between looks.")] = 1.0,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Follow a background job of NAME (run by a server on the same data) with progress bars.

    Exits 0 when it is done, 1 when it failed or was cancelled.
    """
    service = _service(config, data_dir)
    try:
        job = service.job(name, job_id)
        with _bars() as bar:
            files = bar.add_task("files", total=job.files_total)
            chunks = bar.add_task("chunks embedded", total=job.chunks_total)
            while True:
                bar.update(files, completed=job.files_done, total=job.files_total)
                bar.update(chunks, completed=job.chunks_done, total=job.chunks_total)
                if job.state in ("done", "failed", "cancelled"):
                    break
                time.sleep(interval)  # the job is another process's: there is nothing to await
                job = service.job(name, job_id)
    except LuodiError as exc:
        raise _fail(exc) from exc
    typer.echo(_job_line(job))
    for doc, error in job.failed.items():
        typer.echo(f"failed: {doc}: {error}", err=True)
    if job.state != "done":
        raise typer.Exit(1)


@app.command()
def reembed(name: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Embed every chunk of NAME again with the configured embedding model.

    Needed after ``embeddings.model`` changes: until then searches of NAME are refused
    (``kb_needs_reembed``). Searches keep using the old vectors until the new ones are
    swapped in at the end. Stop the server first, or run it where the server runs.
    """
    service = _service(config, data_dir)
    try:
        job = service.submit_reembed(name)
        with _bars() as bar:
            chunks = bar.add_task("chunks re-embedded", total=0)
            while (status := service.wait_job(job.id, timeout=0.25)) is not None and (
                status.state in ("queued", "running")
            ):
                bar.update(chunks, completed=status.chunks_done, total=status.chunks_total)
    except LuodiError as exc:
        raise _fail(exc) from exc
    finally:
        service.close()
    assert status is not None
    typer.echo(_job_line(status))
    if status.state != "done":
        raise typer.Exit(1)
