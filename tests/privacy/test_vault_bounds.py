"""Every vault store under load and at its bounds: thousands of live conversations each
keep their own pseudonyms, and a bound refuses (503 ``pii_vault_full``) instead of
letting two conversations share tags."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from luodi.config.privacy import PolicySettings, PrivacySettings, VaultSettings
from luodi.errors import ConfigError, ServiceUnavailableError
from luodi.privacy import PIIStage, PIIVaultFullError, PseudonymVault, VaultCipher, VaultStore
from luodi.privacy.vault import build_vault
from luodi.privacy.vault_stores import (
    MemoryVaultStore,
    RedisVaultStore,
    SqliteVaultStore,
    build_vault_store,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
MANY = 3000  # well past the 255 live conversations the old memory store could hold

StoreFactory = Callable[..., VaultStore]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _redis_or_skip() -> None:
    redis = pytest.importorskip("redis.asyncio")
    client = redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:  # redis' ConnectionError is not an OSError
        pytest.skip(f"no Redis at 127.0.0.1:6379: {exc}")
    finally:
        await client.aclose()


async def _delete_prefix(prefix: str) -> None:
    import redis.asyncio as redis

    client = redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """A factory of stores of one kind, with the given bounds; all closed afterwards."""
    kind: str = request.param
    prefix = f"luodi-test-bounds-{os.urandom(4).hex()}"
    if kind == "redis":
        await _redis_or_skip()
    made: list[VaultStore] = []

    def make(**bounds: Any) -> VaultStore:
        store: VaultStore
        if kind == "memory":
            store = MemoryVaultStore(**bounds)
        elif kind == "sqlite":
            store = SqliteVaultStore(tmp_path / f"vault-{len(made)}.sqlite", **bounds)
        else:
            import redis.asyncio as redis

            # Thousands of callers share a few connections of the machine's one Redis.
            pool = redis.BlockingConnectionPool.from_url(
                REDIS_URL, max_connections=32, timeout=None
            )
            client = redis.Redis.from_pool(pool)
            store = RedisVaultStore("", prefix=f"{prefix}-{len(made)}", client=client, **bounds)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()
    if kind == "redis":
        await _delete_prefix(prefix)


def make_vault(store: VaultStore, ttl: int = 600) -> PseudonymVault:
    return PseudonymVault(store, VaultCipher(os.urandom(32)), ttl)


def phone(i: int) -> str:
    return f"139{i:08d}"


async def test_thousands_of_concurrent_conversations_each_get_their_own_values_back(
    make_store: StoreFactory,
) -> None:
    vault = make_vault(make_store())
    stage = PIIStage(
        PrivacySettings(policies={"default": PolicySettings(timeout_ms=60_000)}), vault
    )

    async def one(i: int) -> None:
        conv = f"tenant:conv-{i}"
        first = await stage.protect_text(
            f"请回电{phone(i)}，邮箱u{i}@example.com", policy=None, conversation_id=conv
        )
        assert first.text == "请回电<PHONE_1>，邮箱<EMAIL_1>"
        # A second turn of the same conversation, interleaved with everyone else's.
        second = await stage.protect_text(
            f"换成{phone(MANY + i)}，不用{phone(i)}", policy=None, conversation_id=conv
        )
        assert second.text == "换成<PHONE_2>，不用<PHONE_1>"
        assert second.restore("已回拨<PHONE_1>和<PHONE_2>，发信至<EMAIL_1>") == (
            f"已回拨{phone(i)}和{phone(MANY + i)}，发信至u{i}@example.com"
        )

    await asyncio.gather(*(one(i) for i in range(MANY)))
    # The stage keeps each conversation under its scope (here: no owner).
    scopes = [vault.scope(None, f"tenant:conv-{i}") for i in range(MANY)]
    mappings = await asyncio.gather(*(vault.mapping(s) for s in scopes))
    for i, mapping in enumerate(mappings):
        expected = {
            "<PHONE_1>": phone(i),
            "<PHONE_2>": phone(MANY + i),
            "<EMAIL_1>": f"u{i}@example.com",
        }
        assert mapping == expected, f"conversation {i}"


async def test_a_new_conversation_past_max_conversations_is_refused(
    make_store: StoreFactory,
) -> None:
    vault = make_vault(make_store(max_conversations=3))
    for i in range(3):
        await vault.assign(f"c{i}", [("PHONE", phone(i))])
    with pytest.raises(PIIVaultFullError) as info:
        await vault.assign("c3", [("PHONE", phone(3))])
    err = info.value
    assert isinstance(err, ServiceUnavailableError)
    assert (err.status_code, err.code) == (503, "pii_vault_full")
    assert (err.bound, err.limit) == ("max_conversations", 3)
    assert "privacy.vault.max_conversations" in err.message and phone(3) not in err.message
    assert err.headers()["Retry-After"] and int(err.headers()["Retry-After"]) >= 1
    assert await vault.mapping("c3") == {}
    # Live conversations go on, new values included.
    await vault.assign("c0", [("PHONE", phone(10))])
    assert await vault.mapping("c0") == {"<PHONE_1>": phone(0), "<PHONE_2>": phone(10)}
    await vault.forget("c1")
    await vault.assign("c3", [("PHONE", phone(3))])
    assert await vault.mapping("c3") == {"<PHONE_1>": phone(3)}


async def test_a_new_value_past_max_entries_per_conversation_is_refused(
    make_store: StoreFactory,
) -> None:
    vault = make_vault(make_store(max_entries=2))
    await vault.assign("c", [("PHONE", phone(1)), ("EMAIL", "a@b.cn")])
    with pytest.raises(PIIVaultFullError) as info:
        await vault.assign("c", [("PHONE", phone(2))])
    assert (info.value.bound, info.value.limit) == ("max_entries_per_conversation", 2)
    assert info.value.code == "pii_vault_full"
    # Values it already holds keep their tags; other conversations are not affected.
    assert await vault.assign("c", [("PHONE", phone(1))]) == {("PHONE", phone(1)): "<PHONE_1>"}
    assert await vault.mapping("c") == {"<PHONE_1>": phone(1), "<EMAIL_1>": "a@b.cn"}
    await vault.assign("d", [("PHONE", phone(2))])


async def test_under_concurrency_the_bound_admits_exactly_max_conversations(
    make_store: StoreFactory,
) -> None:
    vault = make_vault(make_store(max_conversations=100))

    async def one(i: int) -> bool:
        try:
            await vault.assign(f"c{i}", [("PHONE", phone(i))])
        except PIIVaultFullError:
            return False
        return True

    admitted = await asyncio.gather(*(one(i) for i in range(300)))
    assert sum(admitted) == 100
    for i, ok in enumerate(admitted):
        expected = {"<PHONE_1>": phone(i)} if ok else {}
        assert await vault.mapping(f"c{i}") == expected


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_expired_conversations_make_room_for_new_ones(kind: str, tmp_path: Path) -> None:
    clock = FakeClock()
    store: VaultStore = (
        MemoryVaultStore(clock, max_conversations=2)
        if kind == "memory"
        else SqliteVaultStore(tmp_path / "v.sqlite", clock, max_conversations=2)
    )
    vault = make_vault(store, ttl=60)
    await vault.assign("a", [("PHONE", phone(1))])
    clock.now += 30
    await vault.assign("b", [("PHONE", phone(2))])
    with pytest.raises(PIIVaultFullError) as info:
        await vault.assign("c", [("PHONE", phone(3))])
    assert info.value.retry_after == pytest.approx(30.0)  # when "a" expires
    clock.now += 31  # "a" has expired, "b" has not
    await vault.assign("c", [("PHONE", phone(3))])
    assert await vault.mapping("a") == {}
    assert await vault.mapping("b") == {"<PHONE_1>": phone(2)}
    assert await vault.mapping("c") == {"<PHONE_1>": phone(3)}
    await vault.close()


@pytest.mark.parametrize("store", ["memory", "sqlite", "redis"])
async def test_build_vault_applies_the_configured_bounds(store: str, tmp_path: Path) -> None:
    if store == "redis":
        await _redis_or_skip()
    prefix = f"luodi-test-bounds-{os.urandom(4).hex()}"
    settings = VaultSettings(
        store=store,  # type: ignore[arg-type]
        key="A" * 43 + "=",
        sqlite_path=tmp_path / "v.sqlite",
        redis_prefix=prefix,
        max_conversations=1,
        max_entries_per_conversation=1,
    )
    vault = build_vault(settings)
    try:
        await vault.assign("a", [("PHONE", phone(1))])
        with pytest.raises(PIIVaultFullError, match="max_entries_per_conversation"):
            await vault.assign("a", [("PHONE", phone(2))])
        with pytest.raises(PIIVaultFullError, match="max_conversations"):
            await vault.assign("b", [("PHONE", phone(2))])
    finally:
        await vault.close()
        if store == "redis":
            await _delete_prefix(prefix)


def test_a_vault_store_missing_from_the_registry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown vault store 'memory'; known: sqlite"):
        build_vault_store(VaultSettings(), {"sqlite": lambda _s: MemoryVaultStore()})


@pytest.mark.parametrize("field", ["max_conversations", "max_entries_per_conversation"])
def test_a_bound_below_one_is_rejected(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        VaultSettings(**{field: 0})  # type: ignore[arg-type]


async def test_a_full_vault_refuses_the_request_rather_than_sending_shared_tags() -> None:
    stage = PIIStage.from_settings(PrivacySettings(vault=VaultSettings(max_conversations=1)))
    first = await stage.protect_text("手机13812345678", policy=None, conversation_id="a")
    assert first.text == "手机<PHONE_1>"
    with pytest.raises(PIIVaultFullError) as info:
        await stage.protect_text("手机13987654321", policy=None, conversation_id="b")
    assert info.value.status_code == 503
    assert info.value.message.startswith("pii:")
    assert "13987654321" not in info.value.message
    # Text without anything to pseudonymize needs no vault room.
    plain = await stage.protect_text("你好", policy=None, conversation_id="c")
    assert plain.text == "你好"


async def test_a_vault_full_refusal_is_audited_like_other_pii_refusals(tmp_path: Path) -> None:
    from luodi.api.drain import Drain
    from luodi.api.pipeline import Audit, ChatWork, Exchange, Pipeline, Protect, Restore
    from luodi.api.state import AppState
    from luodi.config import SecuritySettings, Settings, StorageSettings
    from luodi.engine.types import SamplingParams
    from luodi.security import AuditFilter, Gateway
    from tests.conftest import make_key

    gateway = await Gateway.create(
        SecuritySettings(), StorageSettings(database_url=f"sqlite:///{tmp_path / 'luodi.db'}")
    )
    stage = PIIStage.from_settings(PrivacySettings(vault=VaultSettings(max_conversations=1)))
    protect = Protect(lambda: stage)
    pipeline = Pipeline(
        AppState(Settings()),
        [protect],
        restore=Restore(),
        audit=Audit(lambda: gateway, Drain()),
    )
    try:
        secret = make_key(gateway, "vault-user", ["developer"])
        principal = await gateway.authenticate(f"Bearer {secret}", "127.0.0.1")

        def exchange(conversation: str, text: str) -> Exchange:
            work = ChatWork([{"role": "user", "content": text}], {}, SamplingParams())
            return Exchange(
                principal,
                "/v1/chat/completions",
                "127.0.0.1",
                "cloud-model",
                work,
                conversation_id=f"{principal.tenant}:{conversation}",
                leaves_premises=True,
            )

        first = exchange("a", "手机13812345678")
        async with pipeline.guarding(first):
            await protect.run(first)
        second = exchange("b", "手机13987654321")
        with pytest.raises(PIIVaultFullError):
            async with pipeline.guarding(
                second
            ):  # as the chat, completions and embeddings routes do
                await protect.run(second)
        (record,) = gateway.audit_log.query(AuditFilter(user="vault-user"))
        assert record["decision"] == "denied"
        assert "privacy.vault.max_conversations" in record["reason"]
        assert "13987654321" not in str(record)
    finally:
        await stage.close()
        await gateway.close()
