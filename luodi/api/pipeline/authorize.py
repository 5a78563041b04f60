"""Authorize: may this principal invoke this model, and read the knowledge bases it names?"""

from __future__ import annotations

from collections.abc import Callable

from luodi.api.pipeline.exchange import ChatWork, Exchange
from luodi.security import Gateway

__all__ = ["Authorize"]


class Authorize:
    """RBAC and tenant scope: ``model:<name>:invoke``, and ``kb:<name>:read`` per KB."""

    name = "authorize"

    def __init__(self, gateway: Callable[[], Gateway]) -> None:
        self._gateway = gateway

    async def run(self, exchange: Exchange) -> None:
        self._gateway().authorize(exchange.principal, f"model:{exchange.model}:invoke")
        if isinstance(exchange.work, ChatWork):
            for kb in exchange.work.kb:
                self._gateway().authorize(exchange.principal, f"kb:{kb}:read")
