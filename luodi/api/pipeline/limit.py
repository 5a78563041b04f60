"""Limit: nothing is admitted while draining; quotas reserve the planned prompt's tokens."""

from __future__ import annotations

from collections.abc import Callable

from luodi.api.drain import SHUTTING_DOWN, Drain
from luodi.api.pipeline.exchange import Exchange
from luodi.errors import ServiceUnavailableError
from luodi.security import Gateway

__all__ = ["Limit"]


class Limit:
    """Admission: a draining server refuses with 503 + Retry-After, then the quotas.

    After Route, so the reservation is the prompt's real token count where the
    engine tokenized it; before Launch, so nothing over quota reaches an engine.
    The reservation is settled with the tokens really used when the audit record is
    written (``Audit``).
    """

    name = "limit"

    def __init__(self, gateway: Callable[[], Gateway], drain: Drain) -> None:
        self._gateway = gateway
        self._drain = drain

    async def run(self, exchange: Exchange) -> None:
        if self._drain.draining:
            raise ServiceUnavailableError(SHUTTING_DOWN, retry_after=1.0)
        await self._gateway().admit(exchange.principal, tokens=exchange.prompt_tokens)
