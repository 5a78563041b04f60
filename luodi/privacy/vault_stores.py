"""Vault stores: in this process, in a SQLite file, or in Redis shared by replicas.

Every store keeps only digests, tags and AES-GCM-sealed values (see ``vault.py``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from luodi.privacy.errors import PIIUnavailableError
from luodi.privacy.operators import tag_for

__all__ = ["MemoryVaultStore", "RedisVaultStore", "SqliteVaultStore"]


@dataclass
class _Conversation:
    tags: dict[str, str] = field(default_factory=dict)  # digest -> tag
    sealed: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # tag -> (type, value)
    counts: dict[str, int] = field(default_factory=dict)  # entity type -> tags issued
    expires: float = 0.0


class MemoryVaultStore:
    """A dict per conversation in this process; expired ones are dropped as they are met."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._conversations: dict[str, _Conversation] = {}
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
                conv = self._conversations[conversation] = _Conversation()
                self._sweep(now)
            conv.expires = now + ttl
            tag = conv.tags.get(digest)
            if tag is None:
                n = conv.counts.get(entity_type, 0) + 1
                conv.counts[entity_type] = n
                tag = conv.tags[digest] = tag_for(entity_type, n)
                conv.sealed[tag] = (entity_type, sealed)
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
        # Amortised clean-up: new conversations pay for dropping expired ones.
        if len(self._conversations) % 256 == 0:
            for key in [k for k, c in self._conversations.items() if c.expires <= now]:
                del self._conversations[key]

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
"""


class SqliteVaultStore:
    """One SQLite file (WAL); calls run in a worker thread behind one lock."""

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def _assign(
        self, conversation: str, entity_type: str, digest: str, sealed: bytes, ttl: int
    ) -> str:
        now = self._clock()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                self._expire(conversation, now)
                row = db.execute(
                    "SELECT tag FROM pii_vault WHERE conversation=? AND digest=?",
                    (conversation, digest),
                ).fetchone()
                if row is not None:
                    tag = str(row[0])
                else:
                    (count,) = db.execute(
                        "SELECT COUNT(*) FROM pii_vault WHERE conversation=? AND entity_type=?",
                        (conversation, entity_type),
                    ).fetchone()
                    tag = tag_for(entity_type, int(count) + 1)
                    db.execute(
                        "INSERT INTO pii_vault VALUES (?, ?, ?, ?, ?)",
                        (conversation, tag, digest, entity_type, sealed),
                    )
                db.execute(
                    "INSERT INTO pii_vault_expiry VALUES (?, ?) ON CONFLICT(conversation) "
                    "DO UPDATE SET expires=excluded.expires",
                    (conversation, now + ttl),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return tag

    def _expire(self, conversation: str, now: float) -> None:
        row = self._db.execute(
            "SELECT expires FROM pii_vault_expiry WHERE conversation=?", (conversation,)
        ).fetchone()
        if row is not None and row[0] <= now:
            self._db.execute("DELETE FROM pii_vault WHERE conversation=?", (conversation,))
            self._db.execute("DELETE FROM pii_vault_expiry WHERE conversation=?", (conversation,))

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
        with self._lock:
            self._db.execute("DELETE FROM pii_vault WHERE conversation=?", (conversation,))
            self._db.execute("DELETE FROM pii_vault_expiry WHERE conversation=?", (conversation,))

    def purge_expired(self) -> int:
        """Delete every expired conversation; returns how many."""
        with self._lock:
            now = self._clock()
            gone = [
                r[0]
                for r in self._db.execute(
                    "SELECT conversation FROM pii_vault_expiry WHERE expires<=?", (now,)
                )
            ]
            for conversation in gone:
                self._db.execute("DELETE FROM pii_vault WHERE conversation=?", (conversation,))
                self._db.execute(
                    "DELETE FROM pii_vault_expiry WHERE conversation=?", (conversation,)
                )
        return len(gone)

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


# KEYS: digests hash, values hash, counters hash. ARGV: digest, entity, sealed, ttl.
_ASSIGN_LUA = """
local tag = redis.call('HGET', KEYS[1], ARGV[1])
if not tag then
  local n = redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
  tag = '<' .. ARGV[2] .. '_' .. n .. '>'
  redis.call('HSET', KEYS[1], ARGV[1], tag)
  redis.call('HSET', KEYS[2], tag, ARGV[2] .. '|' .. ARGV[3])
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
return tag
"""


class RedisVaultStore:
    """Three hashes per conversation, updated atomically by one Lua script; Redis
    expires them ``ttl`` after the last assignment."""

    def __init__(self, url: str, *, prefix: str = "luodi:pii", client: Any = None) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        self._errors: tuple[type[BaseException], ...] = (OSError, RedisError)
        self._redis = client if client is not None else aioredis.from_url(url)
        self._prefix = prefix
        self._script = self._redis.register_script(_ASSIGN_LUA)

    def _keys(self, conversation: str) -> list[str]:
        base = f"{self._prefix}:{{{conversation}}}"  # hash tag: one cluster slot
        return [f"{base}:digests", f"{base}:values", f"{base}:counts"]

    async def assign(
        self, conversation: str, entity_type: str, digest: str, sealed: bytes, ttl: int
    ) -> str:
        import base64

        try:
            tag = await self._script(
                keys=self._keys(conversation),
                args=[digest, entity_type, base64.b64encode(sealed).decode(), ttl],
            )
        except self._errors as exc:
            raise PIIUnavailableError(f"pii: vault (redis) unreachable: {exc}") from exc
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

    async def close(self) -> None:
        await self._redis.aclose()
