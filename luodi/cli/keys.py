"""``luodi keys create|list|revoke``: API keys."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from luodi.errors import ConfigError, LuodiError
from luodi.security.operator import run_as_operator
from luodi.security.principal import Limits

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="luodi YAML config file.")]
_PRIORITIES = {"low": 0, "normal": 1, "high": 2}


def _fail(exc: LuodiError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(2 if isinstance(exc, ConfigError) else 1)


@app.command()
def create(
    user: Annotated[str, typer.Option(help="Owner of the key.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    expires_days: Annotated[float | None, typer.Option(help="Expire after N days.")] = None,
    model: Annotated[list[str] | None, typer.Option(help="Allowed model (repeat).")] = None,
    ip: Annotated[list[str] | None, typer.Option(help="Allowed network, CIDR (repeat).")] = None,
    priority: Annotated[str, typer.Option(help="low, normal or high.")] = "normal",
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
    tpd: Annotated[int | None, typer.Option(help="Tokens per day.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Create a key; its secret is printed once and stored nowhere."""
    if priority not in _PRIORITIES:
        raise typer.BadParameter(f"priority must be one of {sorted(_PRIORITIES)}")
    expires_us = None if expires_days is None else int((time.time() + expires_days * 86_400) * 1e6)
    detail = {"user": user, "name": name, "models": model, "ips": ip, "priority": priority}
    try:
        created = asyncio.run(
            run_as_operator(
                config,
                action="keys.create",
                permission="keys:manage",
                detail=detail,
                run=lambda gw: gw.keys.create(
                    user,
                    name=name,
                    expires_us=expires_us,
                    allowed_models=model or None,
                    ip_allowlist=ip or None,
                    priority=_PRIORITIES[priority],
                    limits=Limits(rpm, tpm, tpd),
                ),
            )
        )
    except LuodiError as exc:
        raise _fail(exc) from exc
    typer.echo(f"key id: {created.info.id}")
    typer.echo(f"secret: {created.secret}")
    typer.echo("Store the secret now: it is shown only once.", err=True)


@app.command("list")
def list_keys(
    user: Annotated[str | None, typer.Option(help="Only this user's keys.")] = None,
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    config: ConfigOpt = None,
) -> None:
    """List keys (one JSON object per line; never secrets)."""
    try:
        keys = asyncio.run(
            run_as_operator(
                config,
                action="keys.list",
                permission="keys:manage",
                detail={"user": user},
                run=lambda gw: gw.keys.list_keys(user=user, include_revoked=all_keys),
            )
        )
    except LuodiError as exc:
        raise _fail(exc) from exc
    for key in keys:
        typer.echo(json.dumps(asdict(key)))


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    config: ConfigOpt = None,
) -> None:
    """Revoke a key; refused from its next request on."""
    try:
        asyncio.run(
            run_as_operator(
                config,
                action="keys.revoke",
                permission="keys:manage",
                detail={"key_id": key_id},
                run=lambda gw: gw.keys.revoke(key_id),
            )
        )
    except LuodiError as exc:
        raise _fail(exc) from exc
    typer.echo(f"revoked {key_id}")
