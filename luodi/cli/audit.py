"""``luodi audit query|export|verify|purge``: the tamper-evident audit log."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from luodi.cli._operator import run_admin
from luodi.security.audit import AuditFilter
from luodi.security.gateway import Gateway

app = typer.Typer(help="Query, export, verify and purge the audit log.", no_args_is_help=True)

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


@app.command()
def verify(config: ConfigOpt = None) -> None:
    """Check the hash chain; exit 1 naming the first bad record if it was tampered with."""
    report = _run(config, "audit.verify", "audit:read", {}, lambda gw: gw.audit_log.verify())
    if report.ok:
        typer.echo(f"audit chain OK: {report.checked} records verified")
        return
    typer.echo(
        f"audit chain BROKEN at record {report.first_bad_seq}: {report.problem} "
        f"({report.checked} records verified before it)",
        err=True,
    )
    raise typer.Exit(1)


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
