"""ORM rows of the web console's sign-in: user passwords and server-side sessions.

Kept apart from ``luodi.storage.models`` so the console's tables read as one unit;
they share its ``Base``, so migrations and ``Base.metadata`` see them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from luodi.storage.models import Base

__all__ = ["ConsoleSessionRow", "UserPasswordRow"]


class UserPasswordRow(Base):
    """A user's password hash (scrypt) and the failed sign-ins counted toward lockout."""

    __tablename__ = "user_passwords"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    hash: Mapped[str] = mapped_column(String(256))
    changed_us: Mapped[int] = mapped_column(BigInteger)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    locked_until_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ConsoleSessionRow(Base):
    """A signed-in browser: the cookie's SHA-256, the key it acts as, its CSRF token.

    ``key_sha256`` is the stored digest of an API key (never a secret): the session's
    Principal is that key's, resolved like any request's, so revoking the key or
    disabling its user ends the session too. ``minted_key_id`` names the key a
    password sign-in created for the session, revoked again at sign-out.
    """

    __tablename__ = "console_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_sha256: Mapped[str] = mapped_column(String(64))
    minted_key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    user: Mapped[str] = mapped_column(String(128), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_us: Mapped[int] = mapped_column(BigInteger)
    expires_us: Mapped[int] = mapped_column(BigInteger, index=True)
