"""Checks made from the request line and headers, before a byte of the body is read.

FastAPI reads and parses a body before it resolves dependencies, so a key checked
in a dependency comes too late: without a key, a 64 MB JSON body used to cost
~500 MB of memory before its 401, and a large upload was spooled to disk first.
The gate refuses a body larger than its route's limit from ``Content-Length``
(and counts a chunked one as it arrives), and authenticates the caller from the
``Authorization`` header, auditing a refusal, before the application reads on.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from luodi.api.errors import ERROR_KEY, error_response
from luodi.errors import LuodiError
from luodi.security import AuditEvent, Decision, Principal
from luodi.security.audit.coverage import request_audit
from luodi.security.console_sessions import CSRF_HEADER, SESSION_COOKIE, ConsoleSessions

if TYPE_CHECKING:
    from luodi.api.state import AppState

__all__ = [
    "CLIENT_IP_KEY",
    "CONSOLE_PUBLIC",
    "PRINCIPAL_KEY",
    "SESSION_KEY",
    "BodyLimits",
    "RequestGate",
]


PRINCIPAL_KEY = "luodi_principal"
"""Where the gate leaves the authenticated Principal in ``request.state``."""

CLIENT_IP_KEY = "luodi_client_ip"
"""Where the gate leaves the client's address (``security.trusted_proxies``)."""

SESSION_KEY = "luodi_console_session"
"""Where the gate leaves a console session's ``SessionInfo`` (cookie sign-in only)."""

CONSOLE_PUBLIC = ("/console/login", "/console/static/")
"""Console paths that answer before sign-in: the sign-in page and its static files."""


_MB = 1024 * 1024


@dataclass(frozen=True)
class BodyLimits:
    """The largest request body per route: glob patterns over paths, else ``default_mb``."""

    default_mb: float
    routes_mb: Mapping[str, float] = field(default_factory=dict)

    def for_path(self, path: str) -> int:
        """Bytes allowed for a body sent to ``path``; the longest matching pattern wins."""
        matches = [p for p in self.routes_mb if fnmatch.fnmatchcase(path, p)]
        mb = self.routes_mb[max(matches, key=len)] if matches else self.default_mb
        return int(mb * _MB)


def _too_large(limit: int) -> str:
    return f"request body larger than this route's limit of {limit / _MB:g} MB"


class RequestGate:
    """Pure ASGI middleware: body limits, then authentication from headers.

    ``open_paths`` answer without a key (a bare liveness probe, and whatever the
    operator opened); every other path, unknown ones included, needs a valid key
    when auth is on, so the routes themselves cannot be enumerated without one.
    The Principal found is left in ``request.state`` for the route's dependency.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        state: Callable[[], AppState],
        limits: BodyLimits,
        open_paths: frozenset[str],
    ) -> None:
        self.app = app
        self._state = state
        self._limits = limits
        self._open = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self._limits.for_path(path)
        headers = _headers(scope)
        declared = headers.get("content-length")
        refusal = None
        if declared is not None and not declared.isdigit():
            refusal = (400, "invalid Content-Length")
        elif declared is not None and int(declared) > limit:
            refusal = (413, _too_large(limit))
        if refusal is not None:
            status, message = refusal
            await error_response(status, message, code="payload_too_large")(scope, receive, send)
            return
        # X-Forwarded-For counts only from security.trusted_proxies (none by default).
        scope.setdefault("state", {})[CLIENT_IP_KEY] = self._state().gateway.client_address(scope)
        if path in self._open or path.startswith(CONSOLE_PUBLIC):
            await self.app(scope, _counted(receive, limit), send)
            return
        if not await self._authenticate(scope, receive, send, headers):
            return
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with request_audit() as audit:
            try:
                await self.app(scope, _counted(receive, limit), watched)
            except Exception as exc:
                if not audit.written:
                    await self._record(scope, 500, f"internal error: {type(exc).__name__}")
                raise
            if not audit.written and not (path == "/metrics" and status < 400):
                error = scope.get("state", {}).get(ERROR_KEY) if status >= 400 else None
                await self._record(scope, status, error or f"{scope['method']}: HTTP {status}")

    async def _record(self, scope: Scope, status: int, reason: str | None) -> None:
        """The record of an authenticated request nothing else audited (one per request)."""
        await self._state().gateway.audit(
            AuditEvent.for_request(
                scope.get("state", {}).get(PRINCIPAL_KEY),
                endpoint=scope["path"],
                decision=Decision.ALLOWED if status < 400 else Decision.DENIED,
                reason=reason,
                source_ip=scope["state"][CLIENT_IP_KEY],
            )
        )

    async def _authenticate(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]
    ) -> bool:
        state = self._state()
        ip = scope["state"][CLIENT_IP_KEY]
        try:
            principal = await _principal(state, scope, headers, ip)
        except LuodiError as exc:
            await self._record(scope, exc.status_code, exc.message)  # no principal yet
            if scope["path"].startswith("/console") and scope["method"] == "GET":
                await RedirectResponse("/console/login", 303)(scope, receive, send)
                return False
            response = JSONResponse(
                exc.to_openai(), status_code=exc.status_code, headers=exc.headers()
            )
            await response(scope, receive, send)
            return False
        scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
        return True


async def _principal(state: AppState, scope: Scope, headers: dict[str, str], ip: str) -> Principal:
    """The caller from its ``Authorization`` header, else from a console session cookie.

    A cookie-borne request to the API must echo the session's CSRF token in a header;
    the console's own forms carry it in their body, checked by the console's routes.
    """
    token = _cookie(headers, SESSION_COOKIE)
    if headers.get("authorization") or token is None:
        return await state.gateway.authenticate(headers.get("authorization"), ip)
    gateway = state.gateway
    principal, session = await ConsoleSessions(gateway.db, gateway.keys).authenticate(
        token,
        method=scope["method"],
        csrf=headers.get(CSRF_HEADER),
        client_ip=ip,
        check_csrf=not scope["path"].startswith("/console/"),
    )
    scope["state"][SESSION_KEY] = session
    return principal


def _cookie(headers: dict[str, str], name: str) -> str | None:
    jar = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None and morsel.value else None


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _counted(receive: Receive, limit: int) -> Receive:
    """``receive`` that refuses with 413 once more than ``limit`` body bytes arrived.

    An HTTPException passes FastAPI's body parsing untouched (anything else
    becomes a 400 there) and the error handlers render it as OpenAI JSON.
    """
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise HTTPException(413, _too_large(limit))
        return message

    return wrapped
