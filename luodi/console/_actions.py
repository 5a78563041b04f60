"""What every console form shares: the CSRF check, the admin action, form values.

A console form does what the admin API's route of the same name does, through the
same ``Gateway.admin_action`` with the same action name, so RBAC, tenant scope, the
no-escalation rule and the audit record are the API's.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import Request

from luodi.api.state import AppState
from luodi.console.rendering import principal_of, session_of
from luodi.errors import AuthenticationError, InvalidRequestError, PermissionDeniedError
from luodi.security import Limits, Principal
from luodi.security.console_sessions import CSRF_HEADER, SAFE_METHODS

__all__ = [
    "Actions",
    "actor_of",
    "check_csrf",
    "form_count",
    "form_days",
    "form_limits",
    "form_list",
    "when",
]

T = TypeVar("T")

_US_PER_DAY = 86_400 * 1_000_000


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing request of a console session without its CSRF token.

    A request authenticated by an ``Authorization`` header carries no ambient
    credential, so it needs none.
    """
    session = session_of(request)
    if request.method in SAFE_METHODS or session is None:
        return
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        form = await request.form()
        value = form.get("csrf")
        token = value if isinstance(value, str) else None
    if not session.csrf_matches(token):
        raise PermissionDeniedError("missing or wrong CSRF token for this console session")


def actor_of(request: Request) -> Principal:
    """Who signed in (the gate authenticates every non-public console path)."""
    principal = principal_of(request)
    if principal is None:
        raise AuthenticationError("sign in first")
    return principal


class Actions:
    """Runs an admin action for the signed-in principal, as the admin API does."""

    def __init__(self, state: AppState) -> None:
        self._state = state

    async def __call__(
        self,
        request: Request,
        action: str,
        permission: str,
        detail: dict[str, Any],
        run: Callable[[Principal], T],
    ) -> T:
        """``run(actor)`` inside ``Gateway.admin_action``: authorized, audited."""
        actor = actor_of(request)
        gateway = self._state.gateway
        return await gateway.admin_action(
            actor,
            action=action,
            permission=permission,
            detail=detail,
            run=lambda: run(actor),
            source_ip=gateway.client_address(request.scope),
            any_tenant=True,
        )


def form_count(text: str, field: str) -> int | None:
    """A form's optional positive whole number (empty: none of its own)."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise InvalidRequestError(f"{field} must be a positive whole number", param=field)
    value = int(text)
    if value > 2**31 - 1:  # the narrowest column (requests per minute, INTEGER)
        raise InvalidRequestError(f"{field} is too large", param=field)
    return value


def form_limits(rpm: str, tpm: str, tpd: str) -> Limits:
    """Requests per minute, tokens per minute and per day from a form (empty: default)."""
    return Limits(form_count(rpm, "rpm"), form_count(tpm, "tpm"), form_count(tpd, "tpd"))


def form_days(text: str) -> int | None:
    """An expiry ``text`` whole days from now, in µs since the epoch (empty: none)."""
    days = form_count(text, "expires_days")
    if days is None:
        return None
    return int(datetime.now(tz=UTC).timestamp()) * 1_000_000 + days * _US_PER_DAY


def form_list(text: str) -> list[str]:
    """Comma- or space-separated words (model names, permissions)."""
    return [w for w in text.replace(",", " ").split() if w]


def when(us: int | None) -> str:
    """A µs timestamp as UTC text for a table cell (empty for none)."""
    if us is None:
        return ""
    return datetime.fromtimestamp(us / 1e6, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
