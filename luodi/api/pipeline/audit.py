"""Audit: exactly one record per request, however it ends, and the usage charged."""

from __future__ import annotations

import time
from collections.abc import Callable

from luodi.api.drain import Drain
from luodi.api.pipeline.exchange import Exchange
from luodi.security import AuditEvent, Decision, Gateway

__all__ = ["Audit"]


class Audit:
    """Writes an exchange's record once: allowed, denied, cancelled or a 500.

    Whatever ends the request (a finish, an error, a hang-up, the shutdown), the quota
    reservation Limit made is settled with what was really used, and the record says
    the same numbers: the engines' usage, or the tokens counted as they were emitted
    when the request ended before its engines reported. Writing the record is also
    when the request leaves the drain's count of requests in flight.
    """

    name = "audit"

    def __init__(self, gateway: Callable[[], Gateway], drain: Drain) -> None:
        self._gateway = gateway
        self._drain = drain

    def enter(self, exchange: Exchange) -> None:
        """Count ``exchange`` in flight until its record is written."""
        self._drain.enter(exchange)

    async def record(self, exchange: Exchange, decision: Decision, reason: str | None) -> None:
        """Write the record, unless one is written; settle the quota reservation first."""
        if exchange.closed:
            return
        exchange.closed = True
        self._drain.leave(exchange)
        usage = exchange.billed
        if exchange.reservation is not None:
            await self._gateway().settle(exchange.reservation, tokens=usage.total_tokens)
        await self._gateway().audit(
            AuditEvent.for_request(
                exchange.principal,
                endpoint=exchange.endpoint,
                prompt=exchange.prompt,
                response="".join(exchange.response),
                decision=decision,
                reason=reason,
                source_ip=exchange.source_ip,
                model=exchange.model,
                backend=exchange.backend,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                latency_ms=(time.monotonic() - exchange.started) * 1000,
                pii_findings=exchange.pii_findings,
            )
        )
