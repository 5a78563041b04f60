"""Run one admin action from the CLI as the local operator, with CLI-shaped errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from luodi.errors import ConfigError, LuodiError
from luodi.security.gateway import Gateway
from luodi.security.operator import run_as_operator

__all__ = ["run_admin"]


def run_admin(
    config: Path | None,
    action: str,
    permission: str,
    detail: dict[str, Any],
    run: Callable[[Gateway], Any],
) -> Any:
    """Authorize, run and audit ``run``; one error line and exit 2 (config) or 1 otherwise."""
    try:
        return asyncio.run(
            run_as_operator(config, action=action, permission=permission, detail=detail, run=run)
        )
    except LuodiError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from exc
