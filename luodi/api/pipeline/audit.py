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

    A finished request is charged its real usage first (settling the quota
    reservation Limit made); one the client hung up on is recorded, not charged.
    Writing the record is also when the request leaves the drain's count of
    requests in flight.
    """

    name = "audit"

    def __init__(self, gateway: Callable[[], Gateway], drain: Drain) -> None:
        self._gateway = gateway
        self._drain = drain

    def enter(self, exchange: Exchange) -> None:
        """Count ``exchange`` in flight until its record is written."""
        self._drain.enter(exchange)

    async def record(
        self, exchange: Exchange, decision: Decision, reason: str | None, *, charge: bool = False
    ) -> None:
        """Write the record, unless one is written; ``charge`` the usage first (a finish)."""
        if exchange.closed:
            return
        exchange.closed = True
        self._drain.leave(exchange)
        if charge:
            await self._gateway().record_usage(
                exchange.principal, tokens=exchange.usage.total_tokens
            )
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
                prompt_tokens=exchange.usage.prompt_tokens,
                completion_tokens=exchange.usage.completion_tokens,
                latency_ms=(time.monotonic() - exchange.started) * 1000,
                pii_findings=exchange.pii_findings,
            )
        )
