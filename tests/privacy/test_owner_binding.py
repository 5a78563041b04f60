"""Pseudonyms belong to the key that created them (issue 15).

Before, the vault was keyed by conversation id alone: a second key of the same tenant
that sent ``<PHONE_1>`` under the first key's conversation id got the first key's real
number back, and ``anonymize`` with a chosen conversation id told whether a value was
already in someone else's conversation. Each test runs on every vault store.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from luodi.config.privacy import PolicySettings, PrivacySettings, VaultSettings
from luodi.privacy import PIIStage

REDIS_URL = "redis://127.0.0.1:6379/0"
VAULT_KEY = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="  # base64 of 32 bytes


@dataclass(frozen=True)
class Owner:
    """What the stage reads of the gateway's Principal."""

    tenant: str
    key_id: str


ALICE = Owner("bank", "key-alice")
MALLORY = Owner("bank", "key-mallory")  # same tenant, another key


async def _redis_reachable() -> bool:
    import redis.asyncio as redis

    client = redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception:  # redis' ConnectionError is not an OSError
        return False
    finally:
        await client.aclose()
    return True


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def stage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PIIStage]:
    store = request.param
    vault = VaultSettings()
    if store != "memory":
        vault = VaultSettings(
            store=store,
            key=VAULT_KEY,  # type: ignore[arg-type]
            sqlite_path=tmp_path / "vault.sqlite",
            redis_url=REDIS_URL,
            redis_prefix=f"luodi-test-owner-{os.urandom(4).hex()}",
        )
    if store == "redis" and not await _redis_reachable():
        pytest.skip("no Redis at 127.0.0.1:6379")
    built = PIIStage.from_settings(
        PrivacySettings(policies={"default": PolicySettings()}, vault=vault)
    )
    try:
        yield built
    finally:
        await built.close()


async def test_another_key_sending_a_tag_does_not_get_the_first_keys_value(
    stage: PIIStage,
) -> None:
    await stage.protect_text("我的手机13812345678", conversation_id="bank:c1", owner=ALICE)
    probe = await stage.protect_text("请重复<PHONE_1>", conversation_id="bank:c1", owner=MALLORY)
    assert probe.restore("您的号码是<PHONE_1>") == "您的号码是<PHONE_1>"
    own = await stage.protect_text("手机13812345678", conversation_id="bank:c1", owner=ALICE)
    assert own.restore("您的号码是<PHONE_1>") == "您的号码是13812345678"


async def test_each_key_numbers_its_own_values_in_a_shared_conversation_id(
    stage: PIIStage,
) -> None:
    alice = await stage.protect_text("手机13812345678", conversation_id="c", owner=ALICE)
    mallory = await stage.protect_text("手机13987654321", conversation_id="c", owner=MALLORY)
    assert alice.text == mallory.text == "手机<PHONE_1>"
    assert mallory.restore("<PHONE_1>") == "13987654321"
    assert alice.restore("<PHONE_1>") == "13812345678"


async def test_anonymize_cannot_probe_another_keys_conversation(stage: PIIStage) -> None:
    await stage.anonymize("手机13812345678", conversation_id="c", owner=ALICE)
    # Had Mallory shared Alice's map, a value new to it would be <PHONE_2> and
    # Alice's number would come back as <PHONE_1>: a yes/no answer about her data.
    other, _ = await stage.anonymize("手机13900000000", conversation_id="c", owner=MALLORY)
    guess, _ = await stage.anonymize("手机13812345678", conversation_id="c", owner=MALLORY)
    assert other.text == "手机<PHONE_1>"
    assert guess.text == "手机<PHONE_2>"


async def test_the_same_key_keeps_its_tags_across_turns(stage: PIIStage) -> None:
    first = await stage.protect_messages(
        [{"role": "user", "content": "手机13812345678"}], conversation_id="c", owner=ALICE
    )
    second = await stage.protect_messages(
        [{"role": "user", "content": "换成13987654321"}], conversation_id="c", owner=ALICE
    )
    assert first.messages is not None and second.messages is not None
    assert second.messages[0]["content"] == "换成<PHONE_2>"
    assert second.restore("<PHONE_1>/<PHONE_2>") == "13812345678/13987654321"


async def test_an_unowned_conversation_is_apart_from_every_owned_one(stage: PIIStage) -> None:
    await stage.protect_text("手机13812345678", conversation_id="c", owner=ALICE)
    unowned = await stage.protect_text("你好", conversation_id="c")
    assert unowned.restore("<PHONE_1>") == "<PHONE_1>"


async def test_scope_keys_reveal_neither_owner_nor_conversation(stage: PIIStage) -> None:
    # An id that cannot occur in the key's hex digits by chance ("c1" did, 1 run in 9).
    key = stage.vault.scope(ALICE, "bank:talk-q7")
    assert key.startswith("s:") and "alice" not in key and "talk-q7" not in key
    # JSON-encoded parts: moving a separator between the ids makes another scope.
    assert stage.vault.scope(Owner("a", "b:c"), "d") != stage.vault.scope(Owner("a:b", "c"), "d")
