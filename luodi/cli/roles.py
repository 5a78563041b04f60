"""``luodi roles ...``: built-in and custom roles."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from luodi.cli._operator import run_admin
from luodi.security.gateway import Gateway

app = typer.Typer(help="Manage roles and their permissions.", no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="luodi YAML config file.")]
PermOpt = Annotated[
    list[str], typer.Option("--permission", "-p", help="Permission pattern (repeat).")
]


def _run(
    config: Path | None, action: str, detail: dict[str, Any], run: Callable[[Gateway], Any]
) -> Any:
    return run_admin(config, action, "users:manage", detail, run)


@app.command()
def create(
    name: str,
    permission: PermOpt,
    description: Annotated[str, typer.Option(help="What the role is for.")] = "",
    config: ConfigOpt = None,
) -> None:
    """Create a custom role, e.g. ``-p model:qwen3-14b:invoke -p kb:hr-docs:read``."""
    role = _run(
        config,
        "roles.create",
        {"role": name, "permissions": permission},
        lambda gw: gw.directory.create_role(name, permission, description=description),
    )
    typer.echo(json.dumps(asdict(role)))


@app.command("list")
def list_roles(config: ConfigOpt = None) -> None:
    """List roles and their permissions."""
    for role in _run(config, "roles.list", {}, lambda gw: gw.directory.list_roles()):
        typer.echo(json.dumps(asdict(role)))


@app.command()
def update(name: str, permission: PermOpt, config: ConfigOpt = None) -> None:
    """Replace a custom role's permissions."""
    role = _run(
        config,
        "roles.update",
        {"role": name, "permissions": permission},
        lambda gw: gw.directory.set_role_permissions(name, permission),
    )
    typer.echo(json.dumps(asdict(role)))


@app.command()
def delete(name: str, config: ConfigOpt = None) -> None:
    """Delete a custom role (built-in roles cannot be deleted)."""
    _run(config, "roles.delete", {"role": name}, lambda gw: gw.directory.delete_role(name))
    typer.echo(f"deleted role {name}")
