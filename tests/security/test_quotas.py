"""Rate limits and quotas: in-process and Redis stores, under concurrent load."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest

from luodi.config.security import LimitSettings, QuotaSettings, SecuritySettings
from luodi.config.storage import StorageSettings
from luodi.errors import ConfigError, RateLimitError
from luodi.security import Gateway, Limits, Principal
from luodi.security.quota_stores import MemoryQuotaStore, build_quota_store
from luodi.security.quotas import Limiter

from .conftest import REDIS_URL, bearer, make_user


def make_principal(key: str = "k1", tenant: str = "t1", **limits: int) -> Principal:
    key_limits = Limits(**{k[4:]: v for k, v in limits.items() if k.startswith("key_")})
    tenant_limits = Limits(**{k[7:]: v for k, v in limits.items() if k.startswith("tenant_")})
    return Principal(
        key_id=key,
        user="u",
        tenant=tenant,
        roles=frozenset(),
        permissions=frozenset(),
        key_limits=key_limits,
        tenant_limits=tenant_limits,
    )


def make_limiter(now: float = 1_000_000.0) -> tuple[Limiter, list[float]]:
    clock = [now]
    return Limiter(MemoryQuotaStore(), clock=lambda: clock[0]), clock


async def admitted(limiter: Limiter, principal: Principal, n: int, tokens: int = 1) -> int:
    results = await asyncio.gather(
        *(limiter.admit(principal, tokens=tokens) for _ in range(n)), return_exceptions=True
    )
    return sum(1 for r in results if not isinstance(r, BaseException))


@pytest.mark.parametrize(
    ("limits", "label"),
    [
        ({"key_requests_per_minute": 3}, "key 'k1': requests per minute (3)"),
        ({"tenant_requests_per_minute": 3}, "tenant 't1': requests per minute (3)"),
    ],
)
async def test_fourth_request_in_a_minute_is_refused_naming_the_limit(
    limits: dict[str, int], label: str
) -> None:
    limiter, _ = make_limiter(now=60 * 1000 + 15)
    principal = make_principal(**limits)
    for _ in range(3):
        await limiter.admit(principal, tokens=1)
    with pytest.raises(RateLimitError) as err:
        await limiter.admit(principal, tokens=1)
    assert label in err.value.message
    assert err.value.retry_after == pytest.approx(45)
    assert err.value.headers() == {"Retry-After": "45"}


async def test_limit_resets_in_the_next_window() -> None:
    limiter, clock = make_limiter(now=60 * 1000)
    principal = make_principal(key_requests_per_minute=1)
    await limiter.admit(principal, tokens=1)
    with pytest.raises(RateLimitError):
        await limiter.admit(principal, tokens=1)
    clock[0] += 60
    await limiter.admit(principal, tokens=1)


@pytest.mark.parametrize(
    ("limits", "label"),
    [
        ({"key_tokens_per_minute": 100}, "tokens per minute (100)"),
        ({"key_tokens_per_day": 100}, "tokens per day (100)"),
        ({"tenant_tokens_per_day": 100}, "tenant 't1': tokens per day (100)"),
    ],
)
async def test_token_quota_refuses_once_usage_is_spent(limits: dict[str, int], label: str) -> None:
    limiter, _ = make_limiter()
    principal = make_principal(**limits)
    reservation = await limiter.admit(principal, tokens=60)
    await limiter.settle(reservation, tokens=60)
    with pytest.raises(RateLimitError, match=label.replace("(", r"\(").replace(")", r"\)")):
        await limiter.admit(principal, tokens=60)
    await limiter.admit(principal, tokens=40)


async def test_tenant_limit_is_shared_by_its_keys() -> None:
    limiter, _ = make_limiter()
    a = make_principal("ka", tenant_requests_per_minute=5)
    b = make_principal("kb", tenant_requests_per_minute=5)
    assert await admitted(limiter, a, 3) + await admitted(limiter, b, 3) == 5


async def test_refused_request_consumes_nothing() -> None:
    limiter, _ = make_limiter()
    principal = make_principal(key_requests_per_minute=3, tenant_requests_per_minute=2)
    assert await admitted(limiter, principal, 5) == 2
    # Raise the tenant's limit: the key's own counter saw only the 2 admitted requests.
    raised = make_principal(key_requests_per_minute=3, tenant_requests_per_minute=100)
    assert await admitted(limiter, raised, 5) == 1


async def test_quota_holds_under_concurrent_load() -> None:
    limiter, _ = make_limiter()
    principal = make_principal(key_requests_per_minute=50)
    assert await admitted(limiter, principal, 500) == 50


def test_the_configured_quota_store_is_built_by_name() -> None:
    assert isinstance(build_quota_store(SecuritySettings()), MemoryQuotaStore)


def test_a_quota_store_missing_from_the_registry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown quota store 'memory'; known: redis"):
        build_quota_store(SecuritySettings(), {"redis": lambda _s: MemoryQuotaStore()})


@pytest.fixture
async def redis_pair(tmp_path: object) -> AsyncIterator[tuple[Gateway, Gateway, str]]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        pytest.skip(f"Redis at 127.0.0.1:6379 unavailable: {exc}")
    prefix = f"luodi-test:{uuid.uuid4().hex[:10]}"
    security = SecuritySettings(
        redis_url=REDIS_URL,
        quotas=QuotaSettings(
            store="redis",
            redis_prefix=prefix,
            per_key=LimitSettings(requests_per_minute=40),
        ),
    )
    storage = StorageSettings(database_url=f"sqlite:///{tmp_path}/shared.db")  # type: ignore[str-bytes-safe]
    first = await Gateway.create(security, storage)
    second = await Gateway.create(security, storage)
    make_user(first, "replica-user", ["analyst"])
    secret = first.keys.create("replica-user").secret
    try:
        yield first, second, secret
    finally:
        await first.close()
        await second.close()
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        client.close()


async def test_two_replicas_sharing_redis_enforce_one_limit(
    redis_pair: tuple[Gateway, Gateway, str],
) -> None:
    first, second, secret = redis_pair
    p1 = await first.authenticate(bearer(secret), "127.0.0.1")
    p2 = await second.authenticate(bearer(secret), "127.0.0.1")
    results = await asyncio.gather(
        *(gw.admit(p, tokens=1) for _ in range(50) for gw, p in ((first, p1), (second, p2))),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 40
    refusals = [r for r in results if isinstance(r, RateLimitError)]
    assert len(refusals) == 60
    assert "requests per minute (40)" in refusals[0].message


async def test_token_usage_recorded_on_one_replica_limits_the_other(
    redis_pair: tuple[Gateway, Gateway, str],
) -> None:
    first, second, secret = redis_pair
    principal = await first.authenticate(bearer(secret), "127.0.0.1")
    limited = dataclasses.replace(principal, key_limits=Limits(tokens_per_minute=100))
    await first.record_usage(limited, tokens=100)
    with pytest.raises(RateLimitError, match="tokens per minute"):
        await second.admit(limited, tokens=1)


async def test_concurrent_requests_cannot_all_pass_on_one_token_budget() -> None:
    limiter, _ = make_limiter()
    principal = make_principal(key_tokens_per_minute=100)
    results = await asyncio.gather(
        *(limiter.admit(principal, tokens=10, reserve=30) for _ in range(6)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 2  # 2 x 40 <= 100


async def test_settling_returns_what_a_request_did_not_use() -> None:
    limiter, _ = make_limiter()
    principal = make_principal(key_tokens_per_minute=100)
    first = await limiter.admit(principal, tokens=10, reserve=80)
    with pytest.raises(RateLimitError):
        await limiter.admit(principal, tokens=10, reserve=10)
    await limiter.settle(first, tokens=15)  # it stopped early: 75 tokens come back
    await limiter.admit(principal, tokens=10, reserve=70)


async def test_a_request_that_overran_its_reservation_is_charged_in_full() -> None:
    limiter, _ = make_limiter()
    principal = make_principal(key_tokens_per_day=100)
    first = await limiter.admit(principal, tokens=10)
    await limiter.settle(first, tokens=95)  # no max_tokens: the answer came on top
    with pytest.raises(RateLimitError, match="tokens per day"):
        await limiter.admit(principal, tokens=10)


async def test_settling_tokens_never_hands_requests_back() -> None:
    # A request that reserved max_tokens 1000 and used 10 once gave 990 requests back.
    limiter, _ = make_limiter()
    principal = make_principal(key_requests_per_minute=2, key_tokens_per_minute=10_000)
    first = await limiter.admit(principal, tokens=10, reserve=1000)
    await limiter.settle(first, tokens=20)
    await limiter.admit(principal, tokens=10)
    with pytest.raises(RateLimitError, match="requests per minute"):
        await limiter.admit(principal, tokens=10)


async def test_settling_an_overrun_does_not_spend_requests() -> None:
    limiter, _ = make_limiter()
    principal = make_principal(key_requests_per_minute=3, key_tokens_per_minute=10_000)
    first = await limiter.admit(principal, tokens=10)
    await limiter.settle(first, tokens=500)
    assert await admitted(limiter, principal, 5) == 2  # 3 a minute, whatever the tokens
