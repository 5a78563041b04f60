"""Rate limits and token quotas per API key and per tenant.

Limits are fixed calendar windows: requests and tokens per UTC minute, tokens per
UTC day. ``admit`` checks every window of the key and of its tenant at once, counts
the request and reserves its tokens (the prompt, plus the completion limit the client
named) in the token windows; ``settle`` replaces the reservation with the real count
when the request ends, however it ends, so concurrent requests cannot all pass on one
budget and a stream the client drops is charged what it was sent. A request without
a completion limit reserves only its prompt and can overshoot by its own answer.
Counters live in a ``QuotaStore``:
in-process by default, Redis when several replicas must share them (``quota_stores.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from luodi.errors import RateLimitError
from luodi.security.principal import Limits, Principal

__all__ = ["Limiter", "QuotaStore", "Reservation", "WindowCheck"]


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


@dataclass(frozen=True, slots=True)
class Reservation:
    """Tokens charged at admission to each token window, until ``settle`` corrects them."""

    tokens: int
    windows: tuple[tuple[str, int], ...] = ()
    """(counter key, ttl) of every token window charged."""


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

    async def admit(self, principal: Principal, *, tokens: int, reserve: int = 0) -> Reservation:
        """Count one request; reserve ``tokens`` + ``reserve`` in every token budget.

        ``tokens`` is the prompt, ``reserve`` the completion tokens the request may
        still use (its ``max_tokens``, 0 when it named none).

        Raises:
            RateLimitError: Naming the scope and the limit hit, with ``retry_after``
                the seconds until that window resets.
        """
        now = self._clock()
        hold = max(tokens + reserve, 1)
        checks: list[WindowCheck] = []
        labels: list[tuple[str, float]] = []
        token_windows: list[tuple[str, int]] = []
        for scope, name, limits in self._scopes(principal):
            table = (
                ("requests", _MINUTE, limits.requests_per_minute, 1, 1),
                ("tokens", _MINUTE, limits.tokens_per_minute, hold, hold),
                ("tokens", _DAY, limits.tokens_per_day, hold, hold),
            )
            for kind, window, limit, need, charge in table:
                if limit is None:
                    continue
                start = int(now // window.period_s)
                check = WindowCheck(
                    key=f"{scope}:{name}:{kind}:{window.label}:{start}",
                    limit=limit,
                    need=need,
                    charge=charge,
                    ttl_s=window.period_s + 60,
                )
                checks.append(check)
                if kind == "tokens":
                    token_windows.append((check.key, check.ttl_s))
                retry_after = (start + 1) * window.period_s - now
                labels.append(
                    (f"{scope} {name!r}: {kind} per {window.label} ({limit})", retry_after)
                )
        # Only token budgets are settled: the request counters keep their one per request
        # (settling them too let unused max_tokens hand requests back).
        windows = tuple(token_windows)
        if not checks:
            return Reservation(hold, windows)
        failed = await self._store.acquire(checks)
        if failed is not None:
            label, retry_after = labels[failed]
            raise RateLimitError(
                f"rate limit exceeded for {label}; retry in {max(1, round(retry_after))} s",
                retry_after=retry_after,
                code="rate_limit_exceeded",
            )
        return Reservation(hold, windows)

    async def settle(self, reservation: Reservation, *, tokens: int) -> None:
        """Replace what ``admit`` reserved with the ``tokens`` the request really used."""
        delta = tokens - reservation.tokens if reservation.windows else 0
        if delta:
            for key, ttl_s in reservation.windows:
                await self._store.add(key, delta, ttl_s)

    async def record_usage(self, principal: Principal, *, tokens: int) -> None:
        """Charge ``tokens`` used outside a reservation (nothing was admitted for them)."""
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
