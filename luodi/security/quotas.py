"""Rate limits and token quotas per API key and per tenant.

Limits are fixed calendar windows: requests and tokens per UTC minute, tokens per
UTC day. ``admit`` checks every window of the key and of its tenant at once and
counts the request; token usage is charged afterwards by ``record_usage`` with the
real count, so concurrent requests can overshoot a token limit by at most their own
sizes, while request limits hold exactly. Counters live in a ``QuotaStore``:
in-process by default, Redis when several replicas must share them (``quota_stores.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from luodi.errors import RateLimitError
from luodi.security.principal import Limits, Principal

__all__ = ["Limiter", "QuotaStore", "WindowCheck"]


@dataclass(frozen=True, slots=True)
class WindowCheck:
    """One counter to test and bump atomically with the others of a request.

    Attributes:
        key: Counter name, unique per scope, limit kind and window.
        limit: The window's maximum.
        need: Refuse if ``used + need > limit``.
        charge: Add this much when every check passes.
        ttl_s: How long the counter must outlive its window start.
    """

    key: str
    limit: int
    need: int
    charge: int
    ttl_s: int


class QuotaStore(Protocol):
    """Where counters live; ``acquire`` must be atomic across every caller sharing it."""

    async def acquire(self, checks: Sequence[WindowCheck]) -> int | None:
        """Test every check; if all pass, apply every charge.

        Returns:
            ``None`` when admitted, else the index of the first failing check.
        """
        ...

    async def add(self, key: str, amount: int, ttl_s: int) -> None:
        """Add to one counter unconditionally."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True, slots=True)
class _Window:
    label: str
    period_s: int


_MINUTE = _Window("minute", 60)
_DAY = _Window("day", 86_400)


class Limiter:
    """Applies a principal's key and tenant limits against a QuotaStore."""

    def __init__(self, store: QuotaStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    @staticmethod
    def _scopes(principal: Principal) -> list[tuple[str, str, Limits]]:
        return [
            ("key", principal.key_id, principal.key_limits),
            ("tenant", principal.tenant, principal.tenant_limits),
        ]

    async def admit(self, principal: Principal, *, tokens: int) -> None:
        """Count one request and check token budgets for ``tokens`` more.

        Raises:
            RateLimitError: Naming the scope and the limit hit, with ``retry_after``
                the seconds until that window resets.
        """
        now = self._clock()
        checks: list[WindowCheck] = []
        labels: list[tuple[str, float]] = []
        for scope, name, limits in self._scopes(principal):
            table = (
                ("requests", _MINUTE, limits.requests_per_minute, 1, 1),
                ("tokens", _MINUTE, limits.tokens_per_minute, max(tokens, 1), 0),
                ("tokens", _DAY, limits.tokens_per_day, max(tokens, 1), 0),
            )
            for kind, window, limit, need, charge in table:
                if limit is None:
                    continue
                start = int(now // window.period_s)
                checks.append(
                    WindowCheck(
                        key=f"{scope}:{name}:{kind}:{window.label}:{start}",
                        limit=limit,
                        need=need,
                        charge=charge,
                        ttl_s=window.period_s + 60,
                    )
                )
                retry_after = (start + 1) * window.period_s - now
                labels.append(
                    (f"{scope} {name!r}: {kind} per {window.label} ({limit})", retry_after)
                )
        if not checks:
            return
        failed = await self._store.acquire(checks)
        if failed is not None:
            label, retry_after = labels[failed]
            raise RateLimitError(
                f"rate limit exceeded for {label}; retry in {max(1, round(retry_after))} s",
                retry_after=retry_after,
                code="rate_limit_exceeded",
            )

    async def record_usage(self, principal: Principal, *, tokens: int) -> None:
        """Charge the tokens a finished request really used to every token window."""
        if tokens <= 0:
            return
        now = self._clock()
        for scope, name, limits in self._scopes(principal):
            for window, limit in (
                (_MINUTE, limits.tokens_per_minute),
                (_DAY, limits.tokens_per_day),
            ):
                if limit is None:
                    continue
                start = int(now // window.period_s)
                key = f"{scope}:{name}:tokens:{window.label}:{start}"
                await self._store.add(key, tokens, window.period_s + 60)
