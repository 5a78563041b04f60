"""``luodi pii scan|redact FILE``: find or replace personal data in text, JSONL and CSV."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
import yaml  # type: ignore[import-untyped]
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from luodi.config.privacy import OperatorName, PrivacySettings
from luodi.errors import ConfigError, LuodiError
from luodi.privacy.analyzer import Analyzer
from luodi.privacy.files import FileFormat, FileScanner, detect_format
from luodi.privacy.policy import Policy
from luodi.privacy.registry import RecognizerRegistry

__all__ = ["app"]

app = typer.Typer(help="Find or redact personal data in files.", no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="luodi YAML config file.")]
PolicyOpt = Annotated[str | None, typer.Option(help="Policy from privacy.policies.")]
FormatOpt = Annotated[
    str | None, typer.Option("--format", help="text, jsonl or csv (default: by suffix).")
]
FieldOpt = Annotated[
    list[str] | None,
    typer.Option("--field", help="JSONL key (dotted) or CSV column to process (repeat)."),
]


def _fail(exc: LuodiError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(2 if isinstance(exc, ConfigError) else 1)


def _settings(config: Path | None) -> PrivacySettings:
    """The ``privacy`` section of the config file, or the defaults."""
    if config is None:
        return PrivacySettings()
    try:
        data: Any = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        return PrivacySettings.model_validate(data.get("privacy") or {})
    except OSError as exc:
        raise ConfigError(f"cannot read {config}: {exc}") from exc
    except (yaml.YAMLError, ValidationError, AttributeError) as exc:
        raise ConfigError(f"invalid privacy settings in {config}: {exc}") from exc


def _scanner(
    config: Path | None, policy: str | None, fields: list[str] | None, operator: str | None
) -> FileScanner:
    settings = _settings(config)
    name = policy or settings.default_policy
    if name not in settings.policies:
        raise ConfigError(f"unknown policy {name!r}; known: {sorted(settings.policies)}")
    pol = Policy.from_settings(name, settings.policies[name])
    if operator is not None:
        pol = Policy(
            name=pol.name,
            operators=dict.fromkeys(pol.operators, operator),
            block=pol.block,
            on_input=True,
            on_output=False,
            timeout_s=pol.timeout_s,
            min_score=pol.min_score,
            mask_keep_start=pol.mask_keep_start,
            mask_keep_end=pol.mask_keep_end,
            mask_char=pol.mask_char,
        )
    analyzer = Analyzer(
        RecognizerRegistry.with_rules(settings.custom_rules, phone_regions=settings.phone_regions)
    )
    secret = settings.hash_secret.get_secret_value().encode() if settings.hash_secret else None
    return FileScanner(analyzer, pol, fields or ()).with_hash_secret(secret)


def _format(path: Path, fmt: str | None) -> FileFormat:
    if fmt is None:
        return detect_format(path)
    if fmt not in ("text", "jsonl", "csv"):
        raise ConfigError(f"--format must be text, jsonl or csv, not {fmt!r}")
    return fmt  # type: ignore[return-value]


def _progress(path: Path) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    )


def _counts_table(title: str, counts: Counter[str]) -> Table:
    table = Table(title=title)
    table.add_column("entity")
    table.add_column("count", justify="right")
    for entity, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(entity, str(n))
    return table


@app.command()
def scan(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="File to scan.")],
    config: ConfigOpt = None,
    policy: PolicyOpt = None,
    fmt: FormatOpt = None,
    field: FieldOpt = None,
    jsonl_out: Annotated[
        bool, typer.Option("--jsonl", help="Print one JSON finding per line, no values.")
    ] = False,
) -> None:
    """Report the personal data in FILE: counts per entity, or each finding's place."""
    try:
        scanner = _scanner(config, policy, field, None)
        kind = _format(file, fmt)
        counts: Counter[str] = Counter()
        with _progress(file) as bar, file.open(encoding="utf-8", newline="") as src:
            task = bar.add_task(f"scan {file.name}", total=file.stat().st_size)
            for record, name, finding, _ in scanner.scan(src, kind, lambda n: bar.advance(task, n)):
                counts[finding.entity_type] += 1
                if jsonl_out:
                    row = {"record": record, "field": name, **finding.to_dict()}
                    typer.echo(json.dumps(row, ensure_ascii=False))
    except LuodiError as exc:
        raise _fail(exc) from exc
    if not jsonl_out:
        Console().print(_counts_table(f"PII in {file.name}", counts))


@app.command()
def redact(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="File to redact.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output file (default: stdout).")
    ] = None,
    config: ConfigOpt = None,
    policy: PolicyOpt = None,
    fmt: FormatOpt = None,
    field: FieldOpt = None,
    operator: Annotated[
        OperatorName | None,
        typer.Option(help="Use this operator for every entity instead of the policy's."),
    ] = None,
) -> None:
    """Write FILE with personal data replaced (pseudonyms become file-wide tags)."""
    if out is not None and out.resolve() == file.resolve():
        typer.echo("error: --out must differ from the input file", err=True)
        raise typer.Exit(2)
    try:
        scanner = _scanner(config, policy, field, operator)
        kind = _format(file, fmt)
        dst: TextIO = out.open("w", encoding="utf-8", newline="") if out is not None else sys.stdout
        try:
            with _progress(file) as bar, file.open(encoding="utf-8", newline="") as src:
                task = bar.add_task(f"redact {file.name}", total=file.stat().st_size)
                report = scanner.redact(src, dst, kind, lambda n: bar.advance(task, n))
        finally:
            if out is not None:
                dst.close()
    except LuodiError as exc:
        raise _fail(exc) from exc
    if out is not None:
        Console(stderr=True).print(
            _counts_table(f"{report.records} records redacted to {out}", report.findings)
        )
