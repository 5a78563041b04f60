"""Sessions in Redis, shared by many gateway replicas (``support.session_store: redis``).

One string key per session holds its JSON, with the session's TTL on the key itself:
Redis deletes an expired session on its own, so nothing of a conversation outlives
``support.session_ttl_s`` even when no replica runs a purge. A sorted set (score: last
write, in microseconds) lists the sessions for the admin API; its members whose key has
expired are dropped when a listing or a purge meets them.

Writes are whole-session, last writer wins, as in the database store. A release changes
the hand-off mark under WATCH, so a turn saved meanwhile is not overwritten by it.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from luodi.apps.support.sessions import SupportSession
from luodi.errors import ServiceUnavailableError

if TYPE_CHECKING:
    import redis

__all__ = ["RedisSessionStore"]

_SEPARATOR = "\x00"  # cannot occur in an assistant name or a conversation id
_PAGE = 200


def _now_us() -> int:
    return time.time_ns() // 1000


def _members(found: object) -> list[str]:
    """Sorted-set members as text (the client decodes responses)."""
    return [m.decode() if isinstance(m, bytes) else str(m) for m in found]  # type: ignore[attr-defined]


class RedisSessionStore:
    """Sessions in one Redis database; every method is synchronous (run it in a thread)."""

    def __init__(self, url: str, *, prefix: str, ttl_s: float) -> None:
        import redis

        self._redis: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=5, decode_responses=True
        )
        self._prefix = prefix
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._index = f"{prefix}:index"
        self._errors = (redis.RedisError,)

    def _key(self, assistant: str, conversation: str) -> str:
        return f"{self._prefix}:session:{assistant}{_SEPARATOR}{conversation}"

    @staticmethod
    def _member(assistant: str, conversation: str) -> str:
        return f"{assistant}{_SEPARATOR}{conversation}"

    def _fail(self, exc: Exception) -> ServiceUnavailableError:
        return ServiceUnavailableError(f"support sessions: Redis unavailable: {exc}")

    @staticmethod
    def _encode(session: SupportSession, now: int) -> str:
        return json.dumps(
            {
                "tenant": session.tenant,
                "handoff": session.handoff,
                "created_us": session.created_us,
                "updated_us": now,
                "state": session.state(),
            },
            ensure_ascii=False,
        )

    @staticmethod
    def _decode(assistant: str, conversation: str, raw: bytes | str) -> SupportSession:
        data: dict[str, Any] = json.loads(raw)
        return SupportSession.from_state(
            assistant,
            conversation,
            str(data["tenant"]),
            dict(data.get("state") or {}),
            handoff=bool(data.get("handoff")),
            created_us=int(data.get("created_us") or 0),
        )

    def _read(self, assistant: str, conversation: str) -> SupportSession | None:
        try:
            raw = self._redis.get(self._key(assistant, conversation))
        except self._errors as exc:
            raise self._fail(exc) from exc
        return None if raw is None else self._decode(assistant, conversation, raw)

    def load(self, assistant: str, conversation: str, tenant: str) -> SupportSession:
        """The live session, or a new one (Redis has already dropped an expired one)."""
        found = self._read(assistant, conversation)
        return found if found is not None else SupportSession(assistant, conversation, tenant)

    def save(self, session: SupportSession) -> None:
        """Write the session with a fresh TTL, and note it in the index."""
        now = _now_us()
        member = self._member(session.assistant, session.conversation)
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(
                    self._key(session.assistant, session.conversation),
                    self._encode(session, now),
                    px=self._ttl_ms,
                )
                pipe.zadd(self._index, {member: now})
                pipe.execute()
        except self._errors as exc:
            raise self._fail(exc) from exc
        session.new = False

    def get(self, assistant: str, conversation: str) -> SupportSession | None:
        """The session as stored, if live."""
        return self._read(assistant, conversation)

    def list(
        self, *, assistant: str | None = None, handoff: bool | None = None, limit: int = 100
    ) -> list[SupportSession]:
        """Live sessions, most recent first; index entries of expired ones are dropped."""
        out: list[SupportSession] = []
        start = 0
        try:
            while len(out) < limit:
                members = _members(self._redis.zrevrange(self._index, start, start + _PAGE - 1))
                if not members:
                    break
                start += len(members)
                pairs = [m.split(_SEPARATOR, 1) for m in members]
                raws = self._redis.mget([self._key(a, c) for a, c in pairs])
                gone = []
                for member, (name, conversation), raw in zip(members, pairs, raws, strict=True):
                    if raw is None:
                        gone.append(member)
                        continue
                    session = self._decode(name, conversation, raw)
                    if assistant is not None and name != assistant:
                        continue
                    if handoff is not None and session.handoff != handoff:
                        continue
                    out.append(session)
                if gone:
                    self._redis.zrem(self._index, *gone)
                    start -= len(gone)
        except self._errors as exc:
            raise self._fail(exc) from exc
        return out[:limit]

    def release(self, assistant: str, conversation: str) -> bool:
        """Hand a session back to the assistant; False when there is none."""
        import redis

        key = self._key(assistant, conversation)
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(key)  # type: ignore[no-untyped-call]
                        raw = pipe.get(key)
                        if raw is None:
                            pipe.unwatch()
                            return False
                        data = json.loads(raw)
                        data["handoff"] = False
                        pipe.multi()
                        pipe.set(key, json.dumps(data, ensure_ascii=False), keepttl=True)
                        pipe.execute()
                        return True
                    except redis.WatchError:  # a turn wrote it meanwhile: read it again
                        continue
        except self._errors as exc:
            raise self._fail(exc) from exc

    def erase(self, assistant: str, conversation: str) -> bool:
        """Delete a session and everything it remembers (GDPR erasure)."""
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(assistant, conversation))
                pipe.zrem(self._index, self._member(assistant, conversation))
                deleted, _ = pipe.execute()
        except self._errors as exc:
            raise self._fail(exc) from exc
        return bool(deleted)

    def purge_expired(self) -> int:
        """Drop the index entries of sessions Redis has expired; returns how many."""
        dropped = 0
        start = 0
        try:
            while True:
                members = _members(self._redis.zrange(self._index, start, start + _PAGE - 1))
                if not members:
                    return dropped
                keys = [self._key(*m.split(_SEPARATOR, 1)) for m in members]
                with self._redis.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.exists(key)
                    alive = pipe.execute()
                gone = [m for m, live in zip(members, alive, strict=True) if not live]
                if gone:
                    self._redis.zrem(self._index, *gone)
                    dropped += len(gone)
                start += len(members) - len(gone)
        except self._errors as exc:
            raise self._fail(exc) from exc

    def close(self) -> None:
        self._redis.close()
