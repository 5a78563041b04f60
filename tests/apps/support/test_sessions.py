"""Session stores: the database (SQLite, PostgreSQL) and Redis keep, expire and erase alike."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from luodi.apps.support.redis_sessions import RedisSessionStore
from luodi.apps.support.sessions import DatabaseSessionStore, SessionStore, SupportSession
from luodi.config.storage import StorageSettings
from tests.security.conftest import (
    REDIS_URL,
    _postgres_available,
    drop_postgres_schema,
    make_postgres_schema,
)

StoreFactory = Callable[[float], SessionStore]


def _redis_unavailable() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
        return None
    except redis.RedisError as exc:
        return f"Redis at 127.0.0.1:6379 unavailable: {exc}"


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Makes stores with a given TTL on one real backend, closed after the test."""
    made: list[SessionStore] = []
    schema = None
    if request.param == "sqlite":
        storage = StorageSettings(database_url=f"sqlite:///{tmp_path / 'luodi.db'}")
    elif request.param == "postgres":
        reason = _postgres_available()
        if reason:
            pytest.skip(reason)
        schema, url = make_postgres_schema()
        storage = StorageSettings(database_url=url)
    else:
        reason = _redis_unavailable()
        if reason:
            pytest.skip(reason)
    prefix = f"luodi-test:{uuid.uuid4().hex[:8]}"

    def make(ttl_s: float) -> SessionStore:
        store: SessionStore
        if request.param == "redis":
            store = RedisSessionStore(REDIS_URL, prefix=prefix, ttl_s=ttl_s)
        else:
            store = DatabaseSessionStore(storage, ttl_s=ttl_s)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
    if schema is not None:
        drop_postgres_schema(schema)


def _turn(store: SessionStore, conversation: str, text: str) -> SupportSession:
    session = store.load("shop", conversation, "acme")
    session.remember("user", text)
    session.slots["order_id"] = "2024112300001234"
    store.save(session)
    return session


def test_a_session_keeps_its_slots_and_transcript_between_turns(stores: StoreFactory) -> None:
    store = stores(3600)
    _turn(store, "acme:a", "我的快递到哪了")
    again = store.load("shop", "acme:a", "acme")
    assert not again.new
    assert again.slots == {"order_id": "2024112300001234"}
    assert again.transcript == [{"role": "user", "content": "我的快递到哪了"}]
    assert store.load("shop", "acme:b", "acme").new  # another conversation is its own


def test_a_session_two_replicas_share_is_the_same(stores: StoreFactory) -> None:
    first, second = stores(3600), stores(3600)
    _turn(first, "acme:a", "hello")
    seen = second.load("shop", "acme:a", "acme")
    seen.handoff = True
    second.save(seen)
    assert first.get("shop", "acme:a") is not None
    assert first.get("shop", "acme:a").handoff  # type: ignore[union-attr]


def test_an_expired_session_reads_as_new_and_is_gone(stores: StoreFactory) -> None:
    store = stores(0.3)
    _turn(store, "acme:a", "hello")
    assert store.get("shop", "acme:a") is not None
    time.sleep(0.5)  # expiry is wall-clock time passing; nothing to await
    assert store.load("shop", "acme:a", "acme").new
    assert store.get("shop", "acme:a") is None
    assert store.list() == []
    store.purge_expired()
    assert store.list() == []


def test_erasure_deletes_everything_a_session_remembered(stores: StoreFactory) -> None:
    store = stores(3600)
    _turn(store, "acme:a", "我的手机号是13800138000")
    _turn(store, "acme:b", "hello")
    assert store.erase("shop", "acme:a")
    assert store.get("shop", "acme:a") is None
    assert store.load("shop", "acme:a", "acme").transcript == []
    assert [s.conversation for s in store.list()] == ["acme:b"]
    assert not store.erase("shop", "acme:a")  # nothing left to erase


def test_listing_filters_by_assistant_and_handoff_and_release_clears_it(
    stores: StoreFactory,
) -> None:
    store = stores(3600)
    _turn(store, "acme:a", "one")
    waiting = _turn(store, "acme:b", "two")
    waiting.handoff = True
    store.save(waiting)
    other = store.load("bank", "acme:c", "acme")
    store.save(other)
    assert [s.conversation for s in store.list(assistant="shop")] == ["acme:b", "acme:a"]
    assert [s.conversation for s in store.list(handoff=True)] == ["acme:b"]
    assert store.release("shop", "acme:b")
    assert store.list(handoff=True) == []
    assert store.get("shop", "acme:b").transcript  # type: ignore[union-attr]
    assert not store.release("shop", "acme:zzz")
