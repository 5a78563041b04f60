"""API keys: the ``sk-luodi-`` format, hashing, and the key store.

A key's secret is shown once, when it is created; the database keeps only its
SHA-256. Keys carry 256 random bits, so a plain fast hash is as strong as a slow
one here and keeps each lookup to one indexed query. Every request looks its key up
again, so a revocation takes effect on the very next request, on every replica.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import time
from dataclasses import dataclass, field

from sqlalchemy import select

from luodi.config.security import QuotaSettings
from luodi.errors import AuthenticationError, InvalidRequestError, NotFoundError
from luodi.security._epoch import EpochReader, bump_epoch
from luodi.security.principal import Limits, Principal
from luodi.storage import ApiKeyRow, Database, UserRow

__all__ = [
    "KEY_PREFIX",
    "ApiKeyInfo",
    "CreatedKey",
    "KeyChanges",
    "KeyStore",
    "hash_secret",
    "new_secret",
    "parse_bearer",
]

KEY_PREFIX = "sk-luodi-"
_CACHE_LIMIT = 100_000


def new_secret() -> str:
    """A fresh key secret: the prefix then 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest stored in place of the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_bearer(authorization: str | None) -> str:
    """Extract the key from an ``Authorization: Bearer sk-luodi-...`` header.

    Raises:
        AuthenticationError: No header, another scheme, or not a luodi key.
    """
    if not authorization:
        raise AuthenticationError("missing API key: send 'Authorization: Bearer sk-luodi-...'")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("malformed Authorization header: expected 'Bearer <key>'")
    if not token.startswith(KEY_PREFIX):
        raise AuthenticationError("invalid API key: luodi keys start with 'sk-luodi-'")
    return token


def _now_us() -> int:
    return time.time_ns() // 1000


def _check_networks(networks: list[str] | None) -> list[str] | None:
    if networks is None:
        return None
    for net in networks:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError as exc:
            raise InvalidRequestError(
                f"invalid IP allowlist entry {net!r}: {exc}", param="ip_allowlist"
            ) from exc
    return networks


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """What may be shown about a key after creation (never the secret)."""

    id: str
    display_prefix: str
    name: str
    user: str
    tenant: str
    created_us: int
    expires_us: int | None
    revoked_us: int | None
    allowed_models: list[str] | None
    ip_allowlist: list[str] | None
    priority: int
    limits: Limits

    @classmethod
    def from_row(cls, row: ApiKeyRow) -> ApiKeyInfo:
        """Copy a row's public fields."""
        return cls(
            id=row.id,
            display_prefix=row.display_prefix,
            name=row.name,
            user=row.user.name,
            tenant=row.user.tenant.name,
            created_us=row.created_us,
            expires_us=row.expires_us,
            revoked_us=row.revoked_us,
            allowed_models=row.allowed_models,
            ip_allowlist=row.ip_allowlist,
            priority=row.priority,
            limits=Limits(row.requests_per_minute, row.tokens_per_minute, row.tokens_per_day),
        )


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key: ``secret`` is shown to its owner once and stored nowhere."""

    secret: str
    info: ApiKeyInfo


@dataclass(frozen=True, slots=True)
class KeyChanges:
    """What to change on an existing key; a field left ``None`` keeps its value.

    ``limits``, when given, replaces all three of the key's own limits (a ``None``
    inside it falls back to the configured default). ``clear`` names the optional
    fields to empty: ``allowed_models`` (every model the roles grant),
    ``ip_allowlist`` (any address) or ``expires_us`` (never expires).
    """

    name: str | None = None
    priority: int | None = None
    limits: Limits | None = None
    allowed_models: list[str] | None = None
    ip_allowlist: list[str] | None = None
    expires_us: int | None = None
    clear: frozenset[str] = field(default_factory=frozenset)

    def touched(self) -> list[str]:
        """The names of the fields this change sets or clears (for the audit record)."""
        fields = ("name", "priority", "limits", "allowed_models", "ip_allowlist", "expires_us")
        return [f for f in fields if getattr(self, f) is not None or f in self.clear]


_CLEARABLE = frozenset({"allowed_models", "ip_allowlist", "expires_us"})


def _check_priority(priority: int) -> int:
    if priority not in (0, 1, 2):
        raise InvalidRequestError(f"priority must be 0, 1 or 2, got {priority}", param="priority")
    return priority


def _merge(own: Limits, default: Limits) -> Limits:
    return Limits(
        own.requests_per_minute or default.requests_per_minute,
        own.tokens_per_minute or default.tokens_per_minute,
        own.tokens_per_day or default.tokens_per_day,
    )


class KeyStore:
    """Creates, lists, revokes and resolves API keys in the database (synchronous)."""

    def __init__(self, db: Database, quotas: QuotaSettings) -> None:
        self._db = db
        self._default_key = Limits(**quotas.per_key.model_dump())
        self._default_tenant = Limits(**quotas.per_tenant.model_dump())
        self._epoch = EpochReader(db)
        # sha256(secret) -> (epoch when resolved, principal, expiry in µs)
        self._cache: dict[str, tuple[int, Principal, int | None]] = {}

    def create(
        self,
        user: str,
        *,
        name: str = "",
        expires_us: int | None = None,
        allowed_models: list[str] | None = None,
        ip_allowlist: list[str] | None = None,
        priority: int = 1,
        limits: Limits | None = None,
    ) -> CreatedKey:
        """Create a key for an existing user; the secret is returned only here.

        Raises:
            NotFoundError: No such user.
            InvalidRequestError: A bad priority, expiry or IP allowlist entry.
        """
        _check_priority(priority)
        if expires_us is not None and expires_us <= _now_us():
            raise InvalidRequestError("expiry is in the past", param="expires_at")
        limits = limits or Limits()
        secret = new_secret()
        with self._db.session() as session:
            owner = session.scalar(select(UserRow).where(UserRow.name == user))
            if owner is None:
                raise NotFoundError(f"unknown user {user!r}")
            row = ApiKeyRow(
                id="key_" + secrets.token_hex(8),
                secret_sha256=hash_secret(secret),
                display_prefix=secret[: len(KEY_PREFIX) + 4],
                name=name,
                user=owner,
                created_us=_now_us(),
                expires_us=expires_us,
                revoked_us=None,
                allowed_models=allowed_models,
                ip_allowlist=_check_networks(ip_allowlist),
                priority=priority,
                requests_per_minute=limits.requests_per_minute,
                tokens_per_minute=limits.tokens_per_minute,
                tokens_per_day=limits.tokens_per_day,
            )
            session.add(row)
            session.flush()
            return CreatedKey(secret=secret, info=ApiKeyInfo.from_row(row))

    def list_keys(
        self, *, user: str | None = None, include_revoked: bool = False
    ) -> list[ApiKeyInfo]:
        """Keys, newest first, optionally of one user."""
        with self._db.session() as session:
            query = select(ApiKeyRow).join(UserRow).order_by(ApiKeyRow.created_us.desc())
            if user is not None:
                query = query.where(UserRow.name == user)
            if not include_revoked:
                query = query.where(ApiKeyRow.revoked_us.is_(None))
            return [ApiKeyInfo.from_row(row) for row in session.scalars(query)]

    def info(self, key_id: str) -> ApiKeyInfo:
        """One key's public fields.

        Raises:
            NotFoundError: No such key.
        """
        with self._db.session() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFoundError(f"unknown key {key_id!r}")
            return ApiKeyInfo.from_row(row)

    def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revoke a key; refused from its next request on. Idempotent.

        Raises:
            NotFoundError: No such key.
        """
        with self._db.session() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFoundError(f"unknown key {key_id!r}")
            if row.revoked_us is None:
                row.revoked_us = _now_us()
                bump_epoch(session)
            return ApiKeyInfo.from_row(row)

    def update(self, key_id: str, changes: KeyChanges) -> ApiKeyInfo:
        """Change a live key's name, priority, limits, allowlists or expiry.

        Takes effect from the key's next request on, on every replica (the security
        epoch is bumped, as for a revocation). The secret never changes.

        Raises:
            NotFoundError: No such key.
            InvalidRequestError: A revoked key, a bad priority, an expiry in the past,
                a bad IP allowlist entry, or an unknown field in ``clear``.
        """
        unknown = changes.clear - _CLEARABLE
        if unknown:
            raise InvalidRequestError(
                f"cannot clear {', '.join(sorted(unknown))}: only "
                f"{', '.join(sorted(_CLEARABLE))} may be emptied"
            )
        if changes.priority is not None:
            _check_priority(changes.priority)
        if changes.expires_us is not None and changes.expires_us <= _now_us():
            raise InvalidRequestError("expiry is in the past", param="expires_at")
        with self._db.session() as session:
            row = session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFoundError(f"unknown key {key_id!r}")
            if row.revoked_us is not None:
                raise InvalidRequestError(f"API key {key_id} is revoked and cannot be changed")
            if changes.name is not None:
                row.name = changes.name
            if changes.priority is not None:
                row.priority = changes.priority
            if changes.limits is not None:
                row.requests_per_minute = changes.limits.requests_per_minute
                row.tokens_per_minute = changes.limits.tokens_per_minute
                row.tokens_per_day = changes.limits.tokens_per_day
            if changes.allowed_models is not None or "allowed_models" in changes.clear:
                row.allowed_models = changes.allowed_models
            if changes.ip_allowlist is not None or "ip_allowlist" in changes.clear:
                row.ip_allowlist = _check_networks(changes.ip_allowlist)
            if changes.expires_us is not None or "expires_us" in changes.clear:
                row.expires_us = changes.expires_us
            bump_epoch(session)  # every replica's cached Principal of this key is stale
            session.flush()
            return ApiKeyInfo.from_row(row)

    def cached(self, secret: str) -> Principal | None:
        """The cached Principal for ``secret`` if nothing changed since (fast path).

        Returns ``None`` when the key must be resolved again with ``resolve``.

        Raises:
            AuthenticationError: The cached key has expired.
        """
        return self.cached_digest(hash_secret(secret))

    def cached_digest(self, digest: str) -> Principal | None:
        """``cached`` by the key's stored SHA-256 (console sessions hold only that)."""
        entry = self._cache.get(digest)
        if entry is None:
            return None
        if entry[0] != self._epoch.read():
            return None
        if entry[2] is not None and entry[2] <= _now_us():
            raise AuthenticationError(f"API key {entry[1].key_id} has expired")
        return entry[1]

    def close(self) -> None:
        """Release the epoch connection and forget cached keys."""
        self._epoch.close()
        self._cache.clear()

    def resolve(self, secret: str) -> Principal:
        """Look a secret up, build its Principal and cache it.

        Raises:
            AuthenticationError: Unknown, revoked or expired key, or disabled user.
        """
        return self.resolve_digest(hash_secret(secret))

    def resolve_digest(self, digest: str) -> Principal:
        """``resolve`` by the key's stored SHA-256 (console sessions hold only that)."""
        epoch = self._epoch.read()  # read first: a change during the lookup misses next time
        with self._db.session() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.secret_sha256 == digest))
            if row is None:
                raise AuthenticationError("invalid API key")
            if row.revoked_us is not None:
                raise AuthenticationError(f"API key {row.id} has been revoked")
            if row.expires_us is not None and row.expires_us <= _now_us():
                raise AuthenticationError(f"API key {row.id} has expired")
            owner = row.user
            if owner.disabled:
                raise AuthenticationError(f"user {owner.name!r} is disabled")
            tenant = owner.tenant
            permissions = frozenset(p for role in owner.roles for p in role.permissions)
            principal = Principal(
                key_id=row.id,
                user=owner.name,
                tenant=tenant.name,
                roles=frozenset(role.name for role in owner.roles),
                permissions=permissions,
                allowed_models=tuple(row.allowed_models) if row.allowed_models else None,
                ip_allowlist=tuple(row.ip_allowlist) if row.ip_allowlist else None,
                priority=row.priority,
                pii_policy=tenant.pii_policy,
                key_limits=_merge(
                    Limits(row.requests_per_minute, row.tokens_per_minute, row.tokens_per_day),
                    self._default_key,
                ),
                tenant_limits=_merge(
                    Limits(
                        tenant.requests_per_minute,
                        tenant.tokens_per_minute,
                        tenant.tokens_per_day,
                    ),
                    self._default_tenant,
                ),
            )
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[digest] = (epoch, principal, row.expires_us)
            return principal
