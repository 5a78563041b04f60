"""``luodi audit query|export|verify|checkpoint|purge``: the tamper-evident audit log."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from luodi.cli._operator import run_admin
from luodi.errors import LuodiError
from luodi.security.audit import (
    AuditFilter,
    Checkpoint,
    VerifyReport,
    export_checkpoint,
    read_checkpoints,
)
from luodi.security.gateway import Gateway

app = typer.Typer(
    help="Query, export, verify, checkpoint and purge the audit log.", no_args_is_help=True
)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="luodi YAML config file.")]
SinceOpt = Annotated[datetime | None, typer.Option(help="From this time (UTC if no zone).")]
UntilOpt = Annotated[datetime | None, typer.Option(help="Before this time (UTC if no zone).")]
UserOpt = Annotated[str | None, typer.Option(help="Only this user's records.")]
TenantOpt = Annotated[str | None, typer.Option(help="Only this tenant's records.")]


def _us(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000)


_run = run_admin


@app.command()
def query(
    since: SinceOpt = None,
    until: UntilOpt = None,
    user: UserOpt = None,
    tenant: TenantOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many records.")] = 100,
    config: ConfigOpt = None,
) -> None:
    """Print matching records, one JSON object per line."""
    flt = AuditFilter(since_us=_us(since), until_us=_us(until), user=user, tenant=tenant)
    records = _run(
        config,
        "audit.query",
        "audit:read",
        {"user": user, "tenant": tenant},
        lambda gw: gw.audit_log.query(flt, limit=limit),
    )
    for record in records:
        typer.echo(json.dumps(record, ensure_ascii=False))


@app.command()
def export(
    out: Annotated[Path, typer.Option(help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    since: SinceOpt = None,
    until: UntilOpt = None,
    user: UserOpt = None,
    tenant: TenantOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Export matching records to JSONL or CSV."""
    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("--format must be jsonl or csv")
    flt = AuditFilter(since_us=_us(since), until_us=_us(until), user=user, tenant=tenant)

    def run(gw: Gateway) -> int:
        with open(out, "w", encoding="utf-8", newline="") as handle:
            return gw.audit_log.export(flt, handle, fmt=fmt)  # type: ignore[arg-type]

    detail = {"format": fmt, "user": user, "tenant": tenant, "out": str(out)}
    count = _run(config, "audit.export", "audit:read", detail, run)
    typer.echo(f"exported {count} records to {out}")


def _report_line(report: VerifyReport) -> None:
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if report.ok:
        keyed = (
            f", keyed from record {report.keyed_from_seq} with key {report.key_id}"
            if report.keyed
            else ", NOT keyed"
        )
        checkpoints = (
            f", {report.checkpoints_checked} checkpoints matched"
            if report.checkpoints_checked
            else ""
        )
        typer.echo(f"audit chain OK: {report.checked} records verified{keyed}{checkpoints}")
        return
    typer.echo(
        f"audit chain BROKEN at record {report.first_bad_seq}: {report.problem} "
        f"({report.checked} records verified before it)",
        err=True,
    )


@app.command()
def verify(
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(help="Checkpoint file (JSON lines) kept outside the database (repeat)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Check the chain (and checkpoints); exit 1 naming the first bad record if tampered."""
    try:
        checkpoints = [c for path in checkpoint or [] for c in read_checkpoints(path)]
    except LuodiError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    detail = {"checkpoints": [str(p) for p in checkpoint or []]}
    report = _run(
        config, "audit.verify", "audit:read", detail, lambda gw: gw.audit_log.verify(checkpoints)
    )
    if as_json:
        typer.echo(json.dumps(asdict(report)))
    else:
        _report_line(report)
    if not report.ok:
        raise typer.Exit(1)


@app.command("checkpoint")
def checkpoint_cmd(
    out: Annotated[
        Path | None, typer.Option(help="Append the checkpoint to this file (mode 600).")
    ] = None,
    command: Annotated[
        str | None, typer.Option(help="Also pipe it to this command, e.g. 'logger -t luodi'.")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Verify the chain, then print its head (seq, hash) signed with the audit key.

    Store the line where the database's writers cannot rewrite it (another host,
    syslog, an object-lock bucket); ``luodi audit verify --checkpoint FILE`` then
    proves that nothing up to it was removed or rewritten.
    """

    def run(gw: Gateway) -> tuple[VerifyReport, Checkpoint | None]:
        report, made = gw.audit_log.checkpoint()
        if made is not None and (out is not None or command is not None):
            export_checkpoint(made, file=out, command=command)
        return report, made

    detail = {"out": str(out) if out else None, "command": command}
    report, made = _run(config, "audit.checkpoint", "audit:read", detail, run)
    if made is None:
        _report_line(report)
        typer.echo("error: no checkpoint of a broken chain", err=True)
        raise typer.Exit(1)
    if made.mac is None:
        typer.echo(
            "warning: the chain is not keyed (security.audit.key unset): this checkpoint is "
            "unsigned",
            err=True,
        )
    typer.echo(made.to_json())


@app.command()
def purge(
    before: Annotated[datetime | None, typer.Option(help="Delete records before this.")] = None,
    older_than_days: Annotated[
        float | None, typer.Option(help="Delete records older than N days.")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Delete records older than the cutoff; refused inside the retention period."""
    if (before is None) == (older_than_days is None):
        raise typer.BadParameter("give exactly one of --before or --older-than-days")
    cutoff = (
        _us(before)
        if before is not None
        else int((time.time() - (older_than_days or 0) * 86_400) * 1e6)
    )
    assert cutoff is not None
    result = _run(
        config,
        "audit.purge",
        "audit:purge",
        {"before_us": cutoff},
        lambda gw: gw.audit_log.purge(cutoff, principal="cli"),
    )
    typer.echo(f"purged {result.deleted} records (through record {result.through_seq})")
