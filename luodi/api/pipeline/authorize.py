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
        # "model:adapter" runs the model under a LoRA adapter, with the model's right (a
        # colon inside the permission's model segment would split it).
        model = exchange.model.split(":", 1)[0]
        self._gateway().authorize(exchange.principal, f"model:{model}:invoke")
        if isinstance(exchange.work, ChatWork):
            for kb in exchange.work.kb:
                self._gateway().authorize(exchange.principal, f"kb:{kb}:read")
