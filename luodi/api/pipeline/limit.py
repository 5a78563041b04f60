"""Limit: nothing is admitted while draining; quotas reserve the planned prompt's tokens."""

from __future__ import annotations

from collections.abc import Callable

from luodi.api.drain import SHUTTING_DOWN, Drain
from luodi.api.pipeline.exchange import EmbeddingWork, Exchange, TokenizeWork
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

    def __init__(
        self, gateway: Callable[[], Gateway], drain: Drain, default_max_tokens: int | None = None
    ) -> None:
        self._gateway = gateway
        self._drain = drain
        self._default_max_tokens = default_max_tokens

    async def run(self, exchange: Exchange) -> None:
        if self._drain.draining:
            raise ServiceUnavailableError(SHUTTING_DOWN, retry_after=1.0)
        exchange.reservation = await self._gateway().admit(
            exchange.principal, tokens=exchange.prompt_tokens, reserve=self._reserve(exchange)
        )

    def _reserve(self, exchange: Exchange) -> int:
        """Completion tokens to hold: the limit the client (or the default) set, per choice.

        A request with no limit at all holds none: it may run to the end of the context,
        and holding that much would refuse every request of a small budget.
        """
        work = exchange.work
        if isinstance(work, EmbeddingWork | TokenizeWork):
            return 0
        limit = work.params.max_tokens or self._default_max_tokens or 0
        return limit * len(exchange.requests)
