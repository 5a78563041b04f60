"""Web console settings: browser sessions and password sign-in."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ConsoleSettings(BaseModel):
    """The web console at ``/console``: session lifetime, lockout, sign-in rate."""

    enabled: bool = True
    """Serve the console's pages at ``/console``."""

    session_ttl_minutes: int = Field(default=480, ge=1, le=43_200)
    """A browser session ends this long after sign-in (sign in again after)."""

    lockout_failures: int = Field(default=5, ge=1)
    """Consecutive wrong passwords that lock a user's password sign-in."""

    lockout_minutes: int = Field(default=15, ge=1)
    """How long a locked password sign-in stays locked."""

    sign_in_per_minute: int = Field(default=10, ge=1)
    """Sign-in attempts one client address may make per minute (any method)."""
