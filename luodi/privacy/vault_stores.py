"""Vault stores: in this process, in a SQLite file, or in Redis shared by replicas.

Every store keeps only digests, tags and AES-GCM-sealed values (see ``vault.py``), and
every store is bounded: at most ``max_conversations`` live conversations and
``max_entries`` pseudonyms in each. A request that would pass a bound is refused with
``PIIVaultFullError`` (503); it is never given a tag another value already holds.
``VAULT_STORES`` names each store (``privacy.vault.store``) and ``build_vault_store``
builds the configured one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from luodi.config.privacy import (
    DEFAULT_MAX_CONVERSATIONS,
    DEFAULT_MAX_ENTRIES_PER_CONVERSATION,
    VaultSettings,
)
from luodi.errors import ConfigError
from luodi.privacy.errors import PIIUnavailableError, PIIVaultFullError
from luodi.privacy.operators import tag_for

if TYPE_CHECKING:  # vault.py builds its store with build_vault_store below
    from luodi.privacy.vault import VaultStore

__all__ = [
    "VAULT_STORES",
    "MemoryVaultStore",
    "RedisVaultStore",
    "SqliteVaultStore",
    "build_vault_store",
]


@dataclass
class _Conversation:
    expires: float
    tags: dict[str, str] = field(default_factory=dict)  # digest -> tag
    sealed: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # tag -> (type, value)
    counts: dict[str, int] = field(default_factory=dict)  # entity type -> tags issued


class MemoryVaultStore:
    """A dict per conversation in this process, bounded in conversations and entries.

    Conversations are kept in order of expiry: every call passes the vault's one TTL on
    a monotonic clock, so the one used last expires last. Before a new conversation is
    admitted the expired ones are dropped from the front; one past its expiry is also
    dropped whenever it is met. A conversation is stored only once its expiry is set and
    the bounds are checked, so a sweep can never drop the conversation being assigned.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        max_entries: int = DEFAULT_MAX_ENTRIES_PER_CONVERSATION,
    ) -> None:
        self._clock = clock
        self._max_conversations = max_conversations
        self._max_entries = max_entries
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()
        self._lock = asyncio.Lock()

    def _live(self, conversation: str, now: float) -> _Conversation | None:
        conv = self._conversations.get(conversation)
        if conv is not None and conv.expires <= now:
            del self._conversations[conversation]
            return None
        return conv

    async def assign(
        self, conversation: str, entity_type: str, digest: str, sealed: bytes, ttl: int
    ) -> str:
        async with self._lock:
            now = self._clock()
            conv = self._live(conversation, now)
            if conv is None:
                self._sweep(now)
                if len(self._conversations) >= self._max_conversations:
                    raise PIIVaultFullError(
                        "max_conversations",
                        self._max_conversations,
                        retry_after=self._next_expiry(now),
                    )
                conv = _Conversation(expires=now + ttl)
            tag = conv.tags.get(digest)
            if tag is None:
                if len(conv.tags) >= self._max_entries:
                    raise PIIVaultFullError("max_entries_per_conversation", self._max_entries)
                n = conv.counts.get(entity_type, 0) + 1
                conv.counts[entity_type] = n
                tag = conv.tags[digest] = tag_for(entity_type, n)
                conv.sealed[tag] = (entity_type, sealed)
            conv.expires = now + ttl
            self._conversations[conversation] = conv
            self._conversations.move_to_end(conversation)
            return tag

    async def entries(self, conversation: str) -> dict[str, tuple[str, bytes]]:
        async with self._lock:
            conv = self._live(conversation, self._clock())
            return dict(conv.sealed) if conv else {}

    async def forget(self, conversation: str) -> None:
        async with self._lock:
            self._conversations.pop(conversation, None)

    async def close(self) -> None:
        return None

    def _sweep(self, now: float) -> None:
        # Oldest first: stop at the first conversation still live.
        while self._conversations:
            first = next(iter(self._conversations.values()))
            if first.expires > now:
                return
            self._conversations.popitem(last=False)

    def _next_expiry(self, now: float) -> float | None:
        """Seconds until the oldest conversation expires (when a refused one may retry)."""
        if not self._conversations:
            return None
        return max(1.0, next(iter(self._conversations.values())).expires - now)

    def __len__(self) -> int:
        return len(self._conversations)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS pii_vault (
    conversation TEXT NOT NULL,
    tag TEXT NOT NULL,
    digest TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (conversation, tag),
    UNIQUE (conversation, digest)
);
CREATE TABLE IF NOT EXISTS pii_vault_expiry (
    conversation TEXT PRIMARY KEY,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS pii_vault_expiry_expires ON pii_vault_expiry (expires);
"""


class SqliteVaultStore:
    """One SQLite file (WAL); calls run in a worker thread behind one lock.

    A conversation is live while it has a row in ``pii_vault_expiry`` that has not
    expired. Before a new one is admitted the expired ones are deleted (by the index on
    ``expires``) and the rest counted, inside the same ``BEGIN IMMEDIATE`` transaction,
    so replicas sharing the file see one bound.
    """

    def __init__(
        self,
        path: Path | str,
        clock: Callable[[], float] = time.time,
        *,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        max_entries: int = DEFAULT_MAX_ENTRIES_PER_CONVERSATION,
    ) -> None:
        self._clock = clock
        self._max_conversations = max_conversations
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` to ``COMMIT`` under the lock; rolled back on any error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _assign(
        self, conversation: str, entity_type: str, digest: str, sealed: bytes, ttl: int
    ) -> str:
        with self._transaction() as db:
            now = self._clock()
            if not self._expire(conversation, now):
                self._admit(now)
            row = db.execute(
                "SELECT tag FROM pii_vault WHERE conversation=? AND digest=?",
                (conversation, digest),
            ).fetchone()
            tag = (
                str(row[0])
                if row is not None
                else self._insert(conversation, entity_type, digest, sealed)
            )
            db.execute(
                "INSERT INTO pii_vault_expiry VALUES (?, ?) ON CONFLICT(conversation) "
                "DO UPDATE SET expires=excluded.expires",
                (conversation, now + ttl),
            )
        return tag

    def _expire(self, conversation: str, now: float) -> bool:
        """Drop ``conversation`` if it has expired; whether it is live."""
        row = self._db.execute(
            "SELECT expires FROM pii_vault_expiry WHERE conversation=?", (conversation,)
        ).fetchone()
        if row is None:
            return False
        if row[0] <= now:
            self._delete(conversation)
            return False
        return True

    def _admit(self, now: float) -> None:
        """Make room for one more conversation, or refuse it."""
        self._purge(now)
        (live,) = self._db.execute("SELECT COUNT(*) FROM pii_vault_expiry").fetchone()
        if live >= self._max_conversations:
            (first,) = self._db.execute("SELECT MIN(expires) FROM pii_vault_expiry").fetchone()
            raise PIIVaultFullError(
                "max_conversations", self._max_conversations, retry_after=max(1.0, first - now)
            )

    def _insert(self, conversation: str, entity_type: str, digest: str, sealed: bytes) -> str:
        """A new tag for ``digest``, within the conversation's bound."""
        db = self._db
        (total,) = db.execute(
            "SELECT COUNT(*) FROM pii_vault WHERE conversation=?", (conversation,)
        ).fetchone()
        if total >= self._max_entries:
            raise PIIVaultFullError("max_entries_per_conversation", self._max_entries)
        (count,) = db.execute(
            "SELECT COUNT(*) FROM pii_vault WHERE conversation=? AND entity_type=?",
            (conversation, entity_type),
        ).fetchone()
        tag = tag_for(entity_type, int(count) + 1)
        db.execute(
            "INSERT INTO pii_vault VALUES (?, ?, ?, ?, ?)",
            (conversation, tag, digest, entity_type, sealed),
        )
        return tag

    def _delete(self, conversation: str) -> None:
        self._db.execute("DELETE FROM pii_vault WHERE conversation=?", (conversation,))
        self._db.execute("DELETE FROM pii_vault_expiry WHERE conversation=?", (conversation,))

    def _purge(self, now: float) -> int:
        gone = [
            r[0]
            for r in self._db.execute(
                "SELECT conversation FROM pii_vault_expiry WHERE expires<=?", (now,)
            ).fetchall()
        ]
        for conversation in gone:
            self._delete(conversation)
        return len(gone)

    def _entries(self, conversation: str) -> dict[str, tuple[str, bytes]]:
        with self._lock:
            row = self._db.execute(
                "SELECT expires FROM pii_vault_expiry WHERE conversation=?", (conversation,)
            ).fetchone()
            if row is None or row[0] <= self._clock():
                return {}
            rows = self._db.execute(
                "SELECT tag, entity_type, sealed FROM pii_vault WHERE conversation=?",
                (conversation,),
            ).fetchall()
        return {str(t): (str(e), bytes(s)) for t, e, s in rows}

    def _forget(self, conversation: str) -> None:
        with self._transaction():
            self._delete(conversation)

    def purge_expired(self) -> int:
        """Delete every expired conversation; returns how many."""
        with self._transaction():
            return self._purge(self._clock())

    async def assign(
        self, conversation: str, entity_type: str, digest: str, sealed: bytes, ttl: int
    ) -> str:
        return await asyncio.to_thread(self._assign, conversation, entity_type, digest, sealed, ttl)

    async def entries(self, conversation: str) -> dict[str, tuple[str, bytes]]:
        return await asyncio.to_thread(self._entries, conversation)

    async def forget(self, conversation: str) -> None:
        await asyncio.to_thread(self._forget, conversation)

    async def close(self) -> None:
        with self._lock:
            self._db.close()


# KEYS: digests, values, counts hashes. ARGV: digest, entity, sealed, ttl, max entries.
# Returns the tag, or nil when a new value would pass the conversation's bound.
_ASSIGN_LUA = """
local tag = redis.call('HGET', KEYS[1], ARGV[1])
if not tag then
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then return false end
  local n = redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
  tag = '<' .. ARGV[2] .. '_' .. n .. '>'
  redis.call('HSET', KEYS[1], ARGV[1], tag)
  redis.call('HSET', KEYS[2], tag, ARGV[2] .. '|' .. ARGV[3])
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
return tag
"""

# KEYS: the live-conversations sorted set (member: conversation, score: expiry on the
# server's clock). ARGV: conversation, ttl, max conversations. Drops expired members,
# then refreshes or admits the conversation; the set itself expires with its last
# member. Returns 0 when admitted, else the whole seconds until the oldest live
# conversation expires.
_ADMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, math.ceil(tonumber(first[2]) - now))
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class RedisVaultStore:
    """Three hashes per conversation, updated atomically by one Lua script; Redis
    expires them ``ttl`` after the last assignment.

    Live conversations are counted in one sorted set, ``{prefix}:live``, scored by
    expiry. Each script touches the keys of one cluster slot only (the conversation's
    hashes share a hash tag; the set is a key of its own), so the store runs on Redis
    Cluster: an assignment first admits the conversation in the set, then assigns in
    its hashes.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "luodi:pii",
        client: Any = None,
        max_conversations: int = DEFAULT_MAX_CONVERSATIONS,
        max_entries: int = DEFAULT_MAX_ENTRIES_PER_CONVERSATION,
    ) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        self._errors: tuple[type[BaseException], ...] = (OSError, RedisError)
        self._redis = client if client is not None else aioredis.from_url(url)
        self._prefix = prefix
        self._max_conversations = max_conversations
        self._max_entries = max_entries
        self._script = self._redis.register_script(_ASSIGN_LUA)
        self._admit = self._redis.register_script(_ADMIT_LUA)

    def _keys(self, conversation: str) -> list[str]:
        base = f"{self._prefix}:{{{conversation}}}"  # hash tag: one cluster slot
        return [f"{base}:digests", f"{base}:values", f"{base}:counts"]

    @property
    def _live_key(self) -> str:
        return f"{self._prefix}:live"

    async def assign(
        self, conversation: str, entity_type: str, digest: str, sealed: bytes, ttl: int
    ) -> str:
        import base64

        try:
            wait = await self._admit(
                keys=[self._live_key], args=[conversation, ttl, self._max_conversations]
            )
            if int(wait):
                raise PIIVaultFullError(
                    "max_conversations", self._max_conversations, retry_after=float(wait)
                )
            sealed_b64 = base64.b64encode(sealed).decode()
            tag = await self._script(
                keys=self._keys(conversation),
                args=[digest, entity_type, sealed_b64, ttl, self._max_entries],
            )
        except self._errors as exc:
            raise PIIUnavailableError(f"pii: vault (redis) unreachable: {exc}") from exc
        if tag is None:
            raise PIIVaultFullError("max_entries_per_conversation", self._max_entries)
        return tag.decode() if isinstance(tag, bytes) else str(tag)

    async def entries(self, conversation: str) -> dict[str, tuple[str, bytes]]:
        import base64

        try:
            raw = await self._redis.hgetall(self._keys(conversation)[1])
        except self._errors as exc:
            raise PIIUnavailableError(f"pii: vault (redis) unreachable: {exc}") from exc
        out: dict[str, tuple[str, bytes]] = {}
        for tag, packed in raw.items():
            tag_s = tag.decode() if isinstance(tag, bytes) else tag
            packed_s = packed.decode() if isinstance(packed, bytes) else packed
            entity_type, _, b64 = packed_s.partition("|")
            out[tag_s] = (entity_type, base64.b64decode(b64))
        return out

    async def forget(self, conversation: str) -> None:
        await self._redis.delete(*self._keys(conversation))
        await self._redis.zrem(self._live_key, conversation)

    async def close(self) -> None:
        await self._redis.aclose()


def _memory(settings: VaultSettings) -> VaultStore:
    return MemoryVaultStore(
        max_conversations=settings.max_conversations,
        max_entries=settings.max_entries_per_conversation,
    )


def _sqlite(settings: VaultSettings) -> VaultStore:
    return SqliteVaultStore(
        settings.sqlite_path,
        max_conversations=settings.max_conversations,
        max_entries=settings.max_entries_per_conversation,
    )


def _redis(settings: VaultSettings) -> VaultStore:
    return RedisVaultStore(
        settings.redis_url,
        prefix=settings.redis_prefix,
        max_conversations=settings.max_conversations,
        max_entries=settings.max_entries_per_conversation,
    )


VAULT_STORES: Mapping[str, Callable[[VaultSettings], VaultStore]] = MappingProxyType(
    {"memory": _memory, "sqlite": _sqlite, "redis": _redis}
)
"""Store name (``privacy.vault.store``) → constructor."""


def build_vault_store(
    settings: VaultSettings,
    registry: Mapping[str, Callable[[VaultSettings], VaultStore]] = VAULT_STORES,
) -> VaultStore:
    """The vault store ``settings.store`` names, with the configured bounds.

    Args:
        settings: the ``privacy.vault`` section.
        registry: store name → constructor; a test or plugin can pass its own.

    Raises:
        ConfigError: no store has that name.
    """
    factory = registry.get(settings.store)
    if factory is None:
        raise ConfigError(
            f"unknown vault store {settings.store!r}; known: {', '.join(sorted(registry))}"
        )
    return factory(settings)
