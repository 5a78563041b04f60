"""The local operator: how ``luodi keys|users|roles|audit`` reach the gateway.

Someone who can run the CLI against the database already holds everything, so the
CLI acts as an admin principal named after the OS user; each action is still
authorized and written to the audit log like a REST admin call.
"""

from __future__ import annotations

import getpass
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from luodi.config.security import SecuritySettings
from luodi.config.storage import StorageSettings
from luodi.security.directory import DEFAULT_TENANT
from luodi.security.gateway import Gateway
from luodi.security.principal import Principal

__all__ = ["load_sections", "open_gateway", "operator_principal", "run_as_operator"]

T = TypeVar("T")


def load_sections(config: Path | None) -> tuple[SecuritySettings, StorageSettings]:
    """The ``security`` and ``storage`` sections of the config (defaults if absent).

    Raises:
        ConfigError: The file is missing or invalid.
    """
    from luodi.config import load_settings

    settings = load_settings(config)
    security = getattr(settings, "security", None) or SecuritySettings()
    storage = getattr(settings, "storage", None) or StorageSettings()
    return security, storage


def operator_principal() -> Principal:
    """The admin principal the CLI acts as."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Principal(
        key_id="cli",
        user=f"cli:{who}",
        tenant=DEFAULT_TENANT,
        roles=frozenset({"admin"}),
        permissions=frozenset({"*"}),
    )


@asynccontextmanager
async def open_gateway(config: Path | None) -> AsyncIterator[Gateway]:
    """A Gateway from the config file, closed (audit flushed) on exit."""
    security, storage = load_sections(config)
    gateway = await Gateway.create(security, storage)
    try:
        yield gateway
    finally:
        await gateway.close()


async def run_as_operator(
    config: Path | None,
    *,
    action: str,
    permission: str,
    detail: dict[str, Any],
    run: Callable[[Gateway], T],
) -> T:
    """Open the gateway, run one audited admin action as the operator, close."""
    async with open_gateway(config) as gateway:
        return await gateway.admin_action(
            operator_principal(),
            action=action,
            permission=permission,
            detail=detail,
            run=lambda: run(gateway),
        )
