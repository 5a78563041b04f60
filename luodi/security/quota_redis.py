"""Quota counters in Redis, shared by every gateway replica.

One Lua script tests and charges all of a request's windows atomically, so two
replicas can never both admit the last request of a window. Keys expire shortly
after their window. All keys of one request share a hash tag so the script also
runs on Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from luodi.config.security import SecuritySettings
from luodi.errors import ServiceUnavailableError
from luodi.security.quotas import WindowCheck, register_quota_store

__all__ = ["RedisQuotaStore"]

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


def _build(settings: SecuritySettings) -> RedisQuotaStore:
    assert settings.redis_url is not None  # SecuritySettings validates this
    return RedisQuotaStore(settings.redis_url, settings.quotas.redis_prefix)


register_quota_store("redis", _build)
