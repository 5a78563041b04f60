"""User passwords for the console's sign-in: scrypt hashes and lockout.

API keys carry 256 random bits and need no slow hash; passwords are chosen by
people, so they are stretched with scrypt (``hashlib``, no extra dependency) and a
run of wrong guesses locks the user's password sign-in for a while.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
import time

from sqlalchemy import select

from luodi.errors import InvalidRequestError, NotFoundError
from luodi.storage import Database, UserPasswordRow, UserRow

__all__ = ["MIN_PASSWORD_LENGTH", "PasswordStore", "SignIn", "hash_password", "verify_password"]

MIN_PASSWORD_LENGTH = 10
# 16 MiB and ~50 ms per hash: OWASP's scrypt floor (N=2^14 would be weaker; 2^15 with r=8).
_N, _R, _P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` for ``password`` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` hashes to ``stored`` (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(want),
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


# Checked when the user is unknown or has no password, so timing does not tell.
_DUMMY = hash_password(secrets.token_urlsafe(16))


class SignIn(enum.Enum):
    """The outcome of one password check."""

    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"


def _now_us() -> int:
    return time.time_ns() // 1000


class PasswordStore:
    """Sets and checks user passwords, counting failures toward a lockout (synchronous)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def set(self, user: str, password: str) -> None:
        """Set (or replace) ``user``'s password; clears any lockout.

        Raises:
            NotFoundError: No such user.
            InvalidRequestError: Shorter than ``MIN_PASSWORD_LENGTH`` characters.
        """
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidRequestError(
                f"a password needs at least {MIN_PASSWORD_LENGTH} characters", param="password"
            )
        hashed = hash_password(password)
        with self._db.session() as session:
            owner = session.scalar(select(UserRow).where(UserRow.name == user))
            if owner is None:
                raise NotFoundError(f"unknown user {user!r}")
            row = session.get(UserPasswordRow, owner.id)
            if row is None:
                row = UserPasswordRow(user_id=owner.id, hash=hashed, changed_us=_now_us())
                session.add(row)
            row.hash, row.changed_us, row.failed, row.locked_until_us = (
                hashed,
                _now_us(),
                0,
                None,
            )

    def check(self, user: str, password: str, *, failures: int, lock_s: float) -> SignIn:
        """Check a sign-in; the ``failures``-th wrong one in a row locks for ``lock_s``.

        A disabled or unknown user, or one without a password, is ``WRONG`` after the
        same work as a real check. While locked, even the right password is refused.
        """
        with self._db.session() as session:
            owner = session.scalar(select(UserRow).where(UserRow.name == user))
            row = None if owner is None else session.get(UserPasswordRow, owner.id)
            if owner is None or row is None:
                verify_password(password, _DUMMY)
                return SignIn.WRONG
            now = _now_us()
            if row.locked_until_us is not None and row.locked_until_us > now:
                return SignIn.LOCKED
            if verify_password(password, row.hash) and not owner.disabled:
                row.failed, row.locked_until_us = 0, None
                return SignIn.OK
            row.failed += 1
            if row.failed >= failures:
                row.failed, row.locked_until_us = 0, now + int(lock_s * 1_000_000)
                return SignIn.LOCKED
            return SignIn.WRONG
