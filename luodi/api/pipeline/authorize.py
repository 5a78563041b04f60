"""Authorize: may this principal invoke this model, and read the knowledge bases it names?"""

from __future__ import annotations

from collections.abc import Callable

from luodi.api.pipeline.exchange import ChatWork, Exchange
from luodi.engine.base import AdaptedEngine
from luodi.security import Gateway

__all__ = ["Authorize", "rbac_name"]


def rbac_name(exchange: Exchange) -> str:
    """The name access is checked under: the one the client sent, less a LoRA adapter.

    ``qwen3:14b`` (a model whose name holds a colon) is checked as ``qwen3:14b``;
    ``qwen3:legal``, served as the ``legal`` adapter of ``qwen3``, as ``qwen3``.
    """
    engine = exchange.engine
    adapter = engine.adapter if isinstance(engine, AdaptedEngine) else None
    suffix = f":{adapter}"
    if adapter and exchange.model.endswith(suffix):
        return exchange.model[: -len(suffix)]
    return exchange.model


class Authorize:
    """RBAC and tenant scope: ``model:<name>:invoke``, and ``kb:<name>:read`` per KB."""

    name = "authorize"

    def __init__(self, gateway: Callable[[], Gateway]) -> None:
        self._gateway = gateway

    async def run(self, exchange: Exchange) -> None:
        self._gateway().authorize(exchange.principal, f"model:{rbac_name(exchange)}:invoke")
        if isinstance(exchange.work, ChatWork):
            for kb in exchange.work.kb:
                self._gateway().authorize(exchange.principal, f"kb:{kb}:read")
