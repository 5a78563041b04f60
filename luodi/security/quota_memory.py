"""In-process quota counters: the default for a single gateway process."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from luodi.config.security import SecuritySettings
from luodi.security.quotas import WindowCheck, register_quota_store

__all__ = ["MemoryQuotaStore"]


class MemoryQuotaStore:
    """Counters in a dict; a lock makes ``acquire`` atomic across threads too."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + 30.0
        for key in [k for k, t in self._expiry.items() if t <= now]:
            self._counts.pop(key, None)
            self._expiry.pop(key, None)

    async def acquire(self, checks: Sequence[WindowCheck]) -> int | None:
        """Test every check, then charge them all; see ``QuotaStore.acquire``."""
        now = time.monotonic()
        with self._lock:
            self._sweep(now)
            for index, check in enumerate(checks):
                if self._counts.get(check.key, 0) + check.need > check.limit:
                    return index
            for check in checks:
                if check.charge:
                    self._counts[check.key] = self._counts.get(check.key, 0) + check.charge
                    self._expiry[check.key] = now + check.ttl_s
        return None

    async def add(self, key: str, amount: int, ttl_s: int) -> None:
        """Add to one counter."""
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + amount
            self._expiry[key] = time.monotonic() + ttl_s

    async def close(self) -> None:
        """Nothing to release."""


def _build(_settings: SecuritySettings) -> MemoryQuotaStore:
    return MemoryQuotaStore()


register_quota_store("memory", _build)
