"""Browser sessions of the web console, resolved to a Principal exactly as a key is.

A session is a random cookie whose SHA-256 names a row; the row holds the digest of
the API key the browser acts as (the one it signed in with, or one a password
sign-in created for it) and the session's CSRF token. Each request resolves that
key through ``KeyStore`` like an ``Authorization`` header would, so RBAC, quotas,
IP allowlists, revocation and disabled users apply unchanged; a state-changing
request must also echo the CSRF token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import delete

from luodi.errors import AuthenticationError, PermissionDeniedError
from luodi.security.keys import KeyStore
from luodi.security.principal import Principal
from luodi.storage import ConsoleSessionRow, Database

__all__ = [
    "CSRF_HEADER",
    "SAFE_METHODS",
    "SESSION_COOKIE",
    "ConsoleSessions",
    "SessionInfo",
]

SESSION_COOKIE = "luodi_session"
"""The cookie holding the session token (HttpOnly, SameSite=Strict)."""

CSRF_HEADER = "x-csrf-token"
"""The header a script sends the session's CSRF token in."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing, so need no CSRF token."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A live session: whose, which key it acts as, its CSRF token and expiry."""

    user: str
    key_sha256: str
    minted_key_id: str | None
    csrf: str
    expires_us: int

    def csrf_matches(self, token: str | None) -> bool:
        """Constant-time check of a submitted CSRF token."""
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


class ConsoleSessions:
    """Opens, finds and closes console sessions over the gateway's database and keys."""

    def __init__(self, db: Database, keys: KeyStore) -> None:
        self._db = db
        self._keys = keys

    def open(
        self, *, user: str, key_sha256: str, minted_key_id: str | None, ttl_s: float
    ) -> tuple[str, SessionInfo]:
        """A new session (and forget expired ones); returns the cookie token and the info."""
        token = secrets.token_urlsafe(32)
        now = _now_us()
        info = SessionInfo(
            user=user,
            key_sha256=key_sha256,
            minted_key_id=minted_key_id,
            csrf=secrets.token_urlsafe(32),
            expires_us=now + int(ttl_s * 1_000_000),
        )
        with self._db.session() as session:
            session.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.expires_us <= now))
            session.add(
                ConsoleSessionRow(
                    token_sha256=_digest(token),
                    key_sha256=key_sha256,
                    minted_key_id=minted_key_id,
                    user=user,
                    csrf=info.csrf,
                    created_us=now,
                    expires_us=info.expires_us,
                )
            )
        return token, info

    def find(self, token: str) -> SessionInfo | None:
        """The live session of a cookie token, or None (unknown or expired)."""
        with self._db.session() as session:
            row = session.get(ConsoleSessionRow, _digest(token))
            if row is None or row.expires_us <= _now_us():
                return None
            return SessionInfo(
                user=row.user,
                key_sha256=row.key_sha256,
                minted_key_id=row.minted_key_id,
                csrf=row.csrf,
                expires_us=row.expires_us,
            )

    def close(self, token: str) -> SessionInfo | None:
        """End a session; a key its password sign-in created is revoked with it."""
        info = self.find(token)
        with self._db.session() as session:
            session.execute(
                delete(ConsoleSessionRow).where(ConsoleSessionRow.token_sha256 == _digest(token))
            )
        if info is not None and info.minted_key_id is not None:
            self._keys.revoke(info.minted_key_id)
        return info

    async def authenticate(
        self, token: str, *, method: str, csrf: str | None, client_ip: str, check_csrf: bool
    ) -> tuple[Principal, SessionInfo]:
        """The Principal of a session cookie, as ``Gateway.authenticate`` finds a key's.

        Raises:
            AuthenticationError: Unknown or expired session, or its key no longer valid.
            PermissionDeniedError: A state-changing request without the CSRF token, or
                the key may not be used from ``client_ip``.
        """
        info = await asyncio.to_thread(self.find, token)
        if info is None:
            raise AuthenticationError("console session expired or signed out: sign in again")
        if check_csrf and method not in SAFE_METHODS and not info.csrf_matches(csrf):
            raise PermissionDeniedError("missing or wrong CSRF token for this console session")
        principal = await asyncio.to_thread(self._keys.cached_digest, info.key_sha256)
        if principal is None:
            principal = await asyncio.to_thread(self._keys.resolve_digest, info.key_sha256)
        if principal.ip_allowlist is not None and not _ip_allowed(
            client_ip, principal.ip_allowlist
        ):
            raise PermissionDeniedError(
                f"API key {principal.key_id} may not be used from {client_ip}"
            )
        return principal, info


def _ip_allowed(client_ip: str, networks: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in networks)
