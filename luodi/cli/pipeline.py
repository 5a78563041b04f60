"""``luodi pipeline run PIPELINE.yaml``: clean, dedup, filter and protect a JSONL dataset."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from luodi.config import load_settings
from luodi.errors import ConfigError, LuodiError
from luodi.pipeline import LocalRunner, StageContext, StageTotals, load_pipeline
from luodi.pipeline.spec import PIISpec
from luodi.privacy import Analyzer, Anonymizer, OperatorContext, RecognizerRegistry

__all__ = ["PrivacyScrubber", "app", "privacy_scrubber"]

app = typer.Typer(help="Run data pipelines over JSONL records.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Run data pipelines over JSONL records."""


class PrivacyScrubber:
    """The pipeline's ``Scrubber`` over luodi.privacy: analyzer, then anonymizer operators.

    redact → ``<ID_CARD>`` type tags; pseudonymize → ``<PHONE:hmac>`` with the configured
    ``privacy.hash_secret`` (equal values, equal pseudonyms across the dataset), else
    ``<PHONE_1>`` tags numbered within each record.
    """

    def __init__(self, analyzer: Analyzer, min_score: float, secret: bytes | None) -> None:
        self.analyzer = analyzer
        self.min_score = min_score
        self.secret = secret

    def entities(self, text: str, only: Collection[str] | None) -> list[str]:
        found = self.analyzer.analyze(text, entities=only, min_score=self.min_score)
        return [f.entity_type for f in found]

    def scrub(
        self, text: str, action: str, only: Collection[str] | None
    ) -> tuple[str, dict[str, int]]:
        findings = self.analyzer.analyze(text, entities=only, min_score=self.min_score)
        if not findings:
            return text, {}
        operator = "type_tag" if action == "redact" else "hash" if self.secret else "replace"
        result = Anonymizer(OperatorContext(hash_secret=self.secret)).anonymize(
            text, findings, operator
        )
        return result.text, result.counts()


def privacy_scrubber(config: Path | None, spec: PIISpec) -> PrivacyScrubber:
    """Built in every worker process (module level, so the pool can pickle it)."""
    privacy = load_settings(config).privacy
    registry = RecognizerRegistry.with_rules(
        privacy.custom_rules, phone_regions=privacy.phone_regions
    )
    secret = privacy.hash_secret.get_secret_value().encode() if privacy.hash_secret else None
    return PrivacyScrubber(Analyzer(registry), spec.min_score, secret)


def document_text(path: Path) -> str:
    """A file's text through the knowledge loaders (PDF, DOCX, HTML, Markdown, ...)."""
    from luodi.knowledge import LOADERS, load_document

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    blocks = load_document(path.name, data, LOADERS)
    return "\n\n".join(b.text for b in blocks if b.text.strip())


class _StageBars:
    """One progress line per stage: records in → out."""

    def __init__(self, names: list[str]) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=not sys.stderr.isatty(),
        )
        self.tasks: list[TaskID] = [
            self.bar.add_task(f"{i + 1}. {name}", total=None, counts="")
            for i, name in enumerate(names)
        ]

    def update(self, shard: int, totals: list[StageTotals]) -> None:
        for task, t in zip(self.tasks, totals, strict=True):
            self.bar.update(task, counts=f"{t.records_in:>10,} in {t.records_out:>10,} out")


def write_knowledge(
    output: Path, collection: str, access: list[str], config: Path | None, data_dir: Path | None
) -> dict[str, int]:
    """Ingest the kept records into a knowledge base, one document per record.

    Each document is named after the record's ``id`` (else its line in the output) and
    carries its string metadata and, when the run recorded it, its provenance. The
    collection is created when missing. The output is streamed, never loaded whole.
    """
    from luodi.cli.kb import _service

    service = _service(config, data_dir)
    try:
        if collection not in {c.name for c in service.list_collections()}:
            service.create_collection(collection, description="luodi pipeline output")
        counts = {"added": 0, "updated": 0, "unchanged": 0, "failed": 0, "chunks": 0}
        with output.open(encoding="utf-8") as src:
            for n, line in enumerate(src, 1):
                record = json.loads(line)
                if "text" not in record:
                    raise ConfigError("--kb needs records output (format: records), not chat")
                meta = {k: v for k, v in record.items() if k != "text" and isinstance(v, str)}
                for key, value in (record.get("provenance") or {}).items():
                    if isinstance(value, str | int):
                        meta[f"provenance.{key}"] = str(value)
                name = f"{record.get('id', n)}.txt"
                report = service.ingest(
                    collection, [(name, record["text"].encode())], access=access, meta=meta
                )
                counts["added"] += len(report.added)
                counts["updated"] += len(report.updated)
                counts["unchanged"] += len(report.unchanged)
                counts["failed"] += len(report.failed)
                counts["chunks"] += report.chunks
        return counts
    finally:
        service.close()


def _table(summary: dict[str, object]) -> Table:
    table = Table(title=f"{summary['records_in']} records in, {summary['records_out']} kept")
    for col in ("stage", "in", "out", "top reasons"):
        table.add_column(col, justify="right" if col in ("in", "out") else "left")
    stages = summary["stages"]
    assert isinstance(stages, list)
    for s in stages:
        reasons = ", ".join(f"{k} {v}" for k, v in list(s["dropped"].items())[:3])
        table.add_row(s["name"], str(s["in"]), str(s["out"]), reasons)
    return table


@app.command()
def run(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML file.", show_default=False)],
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: the file's, else one per core).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="luodi config (privacy settings).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print summary.json.")] = False,
    kb: Annotated[
        str | None, typer.Option("--kb", help="Also ingest kept records into this knowledge base.")
    ] = None,
    kb_access: Annotated[
        list[str] | None, typer.Option("--kb-access", help="Role that may read them (repeat).")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Knowledge data folder (with --kb).")
    ] = None,
    executor: Annotated[
        str, typer.Option(help="local (process pool) or ray (needs the ray extra).")
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join (ray://head:10001, auto); default: local Ray."),
    ] = None,
) -> None:
    """Run PIPELINE: kept records to its output, rejected.jsonl and summary.json beside it."""
    try:
        spec = load_pipeline(pipeline)
        if workers is not None and workers < 1:
            raise ConfigError("--workers must be at least 1")
        if executor not in ("local", "ray"):
            raise ConfigError(f"--executor must be local or ray, not {executor!r}")
        if kb is not None and spec.format != "records":
            raise ConfigError("--kb needs format: records (documents), not chat")
        ctx = StageContext(scrubber_factory=functools.partial(privacy_scrubber, config))
        pool = None
        if executor == "ray":
            from luodi.pipeline.ray_pool import ray_pool

            pool = ray_pool(ray_address)
        bars = _StageBars([s.stage for s in spec.stages])
        runner = LocalRunner(
            spec,
            ctx,
            workers=workers,
            progress=bars.update,
            pipeline_file=pipeline,
            pool=pool,
            document_loader=document_text,
        )
        with bars.bar:
            summary = runner.run()
        if kb is not None:
            summary["knowledge"] = {
                "collection": kb,
                **write_knowledge(spec.output, kb, kb_access or [], config, data_dir),
            }
    except LuodiError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from exc
    if json_out:
        typer.echo(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        Console().print(_table(summary))
