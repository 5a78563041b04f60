"""Quota stores: counters in this process, or in Redis shared by every gateway replica.

``QUOTA_STORES`` names each store (``security.quotas.store``) and ``build_quota_store``
builds the configured one. The in-process store is the default for a single gateway
process. The Redis store runs one Lua script that tests and charges all of a request's
windows atomically, so two replicas can never both admit the last request of a window;
its keys expire shortly after their window, and all keys of one request share a hash
tag so the script also runs on Redis Cluster.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from luodi.config.security import SecuritySettings
from luodi.errors import ConfigError, ServiceUnavailableError
from luodi.security.quotas import QuotaStore, WindowCheck

__all__ = ["QUOTA_STORES", "MemoryQuotaStore", "RedisQuotaStore", "build_quota_store"]


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


# KEYS[i]: counters; ARGV: limit, need, charge, ttl for each key in turn.
_ACQUIRE = """
for i = 1, #KEYS do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used + tonumber(ARGV[(i - 1) * 4 + 2]) > tonumber(ARGV[(i - 1) * 4 + 1]) then
    return i
  end
end
for i = 1, #KEYS do
  local charge = tonumber(ARGV[(i - 1) * 4 + 3])
  if charge > 0 then
    redis.call('INCRBY', KEYS[i], charge)
    redis.call('EXPIRE', KEYS[i], ARGV[(i - 1) * 4 + 4])
  end
end
return 0
"""


class RedisQuotaStore:
    """Counters in Redis under ``prefix``; fails closed (503) when Redis is down."""

    def __init__(self, url: str, prefix: str) -> None:
        self._redis: Redis = Redis.from_url(url)
        self._prefix = prefix
        self._script: Any = self._redis.register_script(_ACQUIRE)

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{{q}}:{key}"

    async def acquire(self, checks: Sequence[WindowCheck]) -> int | None:
        """Test every check, then charge them all; see ``QuotaStore.acquire``."""
        args: list[int] = []
        for check in checks:
            args += [check.limit, check.need, check.charge, check.ttl_s]
        try:
            failed = int(await self._script(keys=[self._key(c.key) for c in checks], args=args))
        except (RedisError, OSError) as exc:
            raise ServiceUnavailableError(f"quota store unreachable: {exc}") from exc
        return None if failed == 0 else failed - 1

    async def add(self, key: str, amount: int, ttl_s: int) -> None:
        """Add to one counter."""
        name = self._key(key)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(name, amount)
                pipe.expire(name, ttl_s)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise ServiceUnavailableError(f"quota store unreachable: {exc}") from exc

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def _memory(_settings: SecuritySettings) -> QuotaStore:
    return MemoryQuotaStore()


def _redis(settings: SecuritySettings) -> QuotaStore:
    assert settings.redis_url is not None  # SecuritySettings validates this
    return RedisQuotaStore(settings.redis_url, settings.quotas.redis_prefix)


QUOTA_STORES: Mapping[str, Callable[[SecuritySettings], QuotaStore]] = MappingProxyType(
    {"memory": _memory, "redis": _redis}
)
"""Store name (``security.quotas.store``) → constructor."""


def build_quota_store(
    settings: SecuritySettings,
    registry: Mapping[str, Callable[[SecuritySettings], QuotaStore]] = QUOTA_STORES,
) -> QuotaStore:
    """The quota store ``settings.quotas.store`` names.

    Args:
        settings: the ``security`` section.
        registry: store name → constructor; a test or plugin can pass its own.

    Raises:
        ConfigError: no store has that name.
    """
    factory = registry.get(settings.quotas.store)
    if factory is None:
        raise ConfigError(
            f"unknown quota store {settings.quotas.store!r}; known: {', '.join(sorted(registry))}"
        )
    return factory(settings)
