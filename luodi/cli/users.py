"""``luodi users ...``: users and tenants."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from luodi.cli._operator import run_admin
from luodi.security.gateway import Gateway
from luodi.security.passwords import PasswordStore
from luodi.security.principal import Limits

app = typer.Typer(help="Manage users, their roles, and tenants.", no_args_is_help=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="luodi YAML config file.")]


def _run(
    config: Path | None, action: str, detail: dict[str, Any], run: Callable[[Gateway], Any]
) -> Any:
    return run_admin(config, action, "users:manage", detail, run)


def _show(items: Any) -> None:
    for item in items if isinstance(items, list) else [items]:
        typer.echo(json.dumps(asdict(item)))


@app.command()
def create(
    name: str,
    tenant: Annotated[str, typer.Option(help="The user's tenant.")] = "default",
    role: Annotated[list[str] | None, typer.Option(help="Role to grant (repeat).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Create a user."""
    detail = {"user": name, "tenant": tenant, "roles": role or []}
    _show(
        _run(
            config,
            "users.create",
            detail,
            lambda gw: gw.directory.create_user(name, tenant=tenant, roles=role or []),
        )
    )


@app.command("list")
def list_users(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's users.")] = None,
    config: ConfigOpt = None,
) -> None:
    """List users."""
    _show(
        _run(
            config,
            "users.list",
            {"tenant": tenant},
            lambda gw: gw.directory.list_users(tenant=tenant),
        )
    )


@app.command()
def grant(name: str, role: str, config: ConfigOpt = None) -> None:
    """Give a user a role."""
    _show(
        _run(
            config,
            "users.grant_role",
            {"user": name, "role": role},
            lambda gw: gw.directory.grant_role(name, role),
        )
    )


@app.command("revoke-role")
def revoke_role(name: str, role: str, config: ConfigOpt = None) -> None:
    """Take a role from a user."""
    _show(
        _run(
            config,
            "users.revoke_role",
            {"user": name, "role": role},
            lambda gw: gw.directory.revoke_role(name, role),
        )
    )


@app.command()
def disable(name: str, config: ConfigOpt = None) -> None:
    """Disable a user: all their keys are refused from the next request on."""
    _show(
        _run(
            config,
            "users.disable",
            {"user": name},
            lambda gw: gw.directory.set_user_disabled(name, True),
        )
    )


@app.command()
def enable(name: str, config: ConfigOpt = None) -> None:
    """Re-enable a disabled user."""
    _show(
        _run(
            config,
            "users.enable",
            {"user": name},
            lambda gw: gw.directory.set_user_disabled(name, False),
        )
    )


@app.command()
def passwd(
    name: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin (scripts).")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Set a user's password for the web console's sign-in (asked twice unless piped)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    _run(
        config,
        "users.set_password",
        {"user": name},  # never the password
        lambda gw: PasswordStore(gw.db).set(name, password),
    )
    typer.echo(f"password set for user {name!r}")


@app.command("create-tenant")
def create_tenant(
    name: str,
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
    tpd: Annotated[int | None, typer.Option(help="Tokens per day.")] = None,
    pii_policy: Annotated[str | None, typer.Option(help="PII policy name.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Create a tenant (department), optionally with its own limits."""
    detail = {"tenant": name, "rpm": rpm, "tpm": tpm, "tpd": tpd, "pii_policy": pii_policy}
    _show(
        _run(
            config,
            "tenants.create",
            detail,
            lambda gw: gw.directory.create_tenant(
                name, limits=Limits(rpm, tpm, tpd), pii_policy=pii_policy
            ),
        )
    )


@app.command("list-tenants")
def list_tenants(config: ConfigOpt = None) -> None:
    """List tenants."""
    _show(_run(config, "tenants.list", {}, lambda gw: gw.directory.list_tenants()))
