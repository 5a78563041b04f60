"""The pseudonym vault: consistent per conversation, isolated, encrypted, expiring."""

from __future__ import annotations

import base64
import os
import sqlite3
from pathlib import Path

import pytest

from luodi.config.privacy import VaultSettings
from luodi.errors import ConfigError, ServiceUnavailableError
from luodi.privacy import PseudonymVault, VaultCipher
from luodi.privacy.vault_stores import MemoryVaultStore, RedisVaultStore, SqliteVaultStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_vault(store: object | None = None, ttl: int = 60) -> PseudonymVault:
    vault_store = store if store is not None else MemoryVaultStore()
    return PseudonymVault(vault_store, VaultCipher(os.urandom(32)), ttl)  # type: ignore[arg-type]


async def test_same_value_gets_the_same_tag_within_a_conversation() -> None:
    vault = make_vault()
    first = await vault.assign("c1", [("PHONE", "13812345678"), ("PHONE", "13987654321")])
    again = await vault.assign("c1", [("PHONE", "13812345678")])
    assert first[("PHONE", "13812345678")] == again[("PHONE", "13812345678")] == "<PHONE_1>"
    assert first[("PHONE", "13987654321")] == "<PHONE_2>"
    assert await vault.mapping("c1") == {"<PHONE_1>": "13812345678", "<PHONE_2>": "13987654321"}


async def test_conversations_never_share_values() -> None:
    vault = make_vault()
    await vault.assign("a", [("PHONE", "13812345678")])
    await vault.assign("b", [("PHONE", "13987654321")])
    assert await vault.mapping("a") == {"<PHONE_1>": "13812345678"}
    assert await vault.mapping("b") == {"<PHONE_1>": "13987654321"}


async def test_pseudonyms_expire_after_the_ttl_since_last_use() -> None:
    clock = FakeClock()
    vault = make_vault(MemoryVaultStore(clock), ttl=60)
    await vault.assign("c", [("EMAIL", "a@b.cn")])
    clock.now += 59
    assert await vault.mapping("c") == {"<EMAIL_1>": "a@b.cn"}
    await vault.assign("c", [("EMAIL", "a@b.cn")])  # use refreshes the TTL
    clock.now += 59
    assert await vault.mapping("c") != {}
    clock.now += 61
    assert await vault.mapping("c") == {}


async def test_sqlite_file_holds_no_plaintext_and_survives_a_restart(tmp_path: Path) -> None:
    key = os.urandom(32)
    path = tmp_path / "vault.sqlite"
    vault = PseudonymVault(SqliteVaultStore(path), VaultCipher(key), 60)
    await vault.assign("c", [("ID_CARD", "11010519491231002X")])
    await vault.close()
    dump = "\n".join(sqlite3.connect(path).iterdump())
    assert "11010519491231002X" not in dump
    reopened = PseudonymVault(SqliteVaultStore(path), VaultCipher(key), 60)
    assert await reopened.mapping("c") == {"<ID_CARD_1>": "11010519491231002X"}
    await reopened.close()


async def test_sqlite_entries_expire(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SqliteVaultStore(tmp_path / "v.sqlite", clock=clock)
    vault = make_vault(store, ttl=10)
    await vault.assign("c", [("PHONE", "13812345678")])
    clock.now += 11
    assert await vault.mapping("c") == {}
    assert store.purge_expired() == 1
    await vault.close()


async def test_a_wrong_key_cannot_read_the_vault(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite"
    vault = PseudonymVault(SqliteVaultStore(path), VaultCipher(os.urandom(32)), 60)
    await vault.assign("c", [("PHONE", "13812345678")])
    thief = PseudonymVault(SqliteVaultStore(path), VaultCipher(os.urandom(32)), 60)
    with pytest.raises(ServiceUnavailableError, match="cannot be decrypted"):
        await thief.mapping("c")
    await vault.close()
    await thief.close()


def test_key_comes_from_settings_or_a_key_file(tmp_path: Path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    key_file = tmp_path / "vault.key"
    key_file.write_text(key)
    a = VaultCipher.from_settings(VaultSettings(key=key))
    b = VaultCipher.from_settings(VaultSettings(key_file=key_file))
    assert a.digest("c", "PHONE", "1") == b.digest("c", "PHONE", "1")
    with pytest.raises(ConfigError, match="32 bytes"):
        VaultCipher.from_settings(VaultSettings(key=base64.b64encode(b"short").decode()))


def test_a_shared_store_without_a_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="store='redis'"):
        VaultSettings(store="redis")


async def test_redis_store_is_consistent_isolated_and_encrypted() -> None:
    redis = pytest.importorskip("redis.asyncio")
    client = redis.from_url("redis://127.0.0.1:6379/0")
    try:
        await client.ping()
    except OSError as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"no Redis at 127.0.0.1:6379: {exc}")
    except Exception as exc:  # redis' ConnectionError is not an OSError
        pytest.skip(f"no Redis at 127.0.0.1:6379: {exc}")
    prefix = f"luodi-test-pii-{os.urandom(4).hex()}"
    vault = make_vault(RedisVaultStore("", prefix=prefix, client=client), ttl=60)
    try:
        tags = await vault.assign("a", [("PHONE", "13812345678"), ("PHONE", "13812345678")])
        assert tags == {("PHONE", "13812345678"): "<PHONE_1>"}
        await vault.assign("b", [("PHONE", "13987654321")])
        assert await vault.mapping("a") == {"<PHONE_1>": "13812345678"}
        assert await vault.mapping("b") == {"<PHONE_1>": "13987654321"}
        keys = [k async for k in client.scan_iter(f"{prefix}:*")]
        assert keys
        for k in keys:
            assert 0 < await client.ttl(k) <= 60
        for k in keys:
            if await client.type(k) == b"zset":  # the live conversations: ids, no values
                assert sorted(await client.zrange(k, 0, -1)) == [b"a", b"b"]
                continue
            raw = await client.hgetall(k)
            assert b"13812345678" not in b"".join(list(raw) + list(raw.values()))
    finally:
        for k in [k async for k in client.scan_iter(f"{prefix}:*")]:
            await client.delete(k)
        await vault.close()
