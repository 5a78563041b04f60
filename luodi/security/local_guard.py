"""With authentication off, answer only loopback names and same-machine browsers.

``security.auth_enabled: false`` already refuses to bind anything but loopback, yet a
browser on the same machine is still a way in: a page on ``attacker.example`` can
re-point its own name at 127.0.0.1 (DNS rebinding) and then read ``/admin`` as an
anonymous admin, or post a cross-origin form (a multipart upload needs no CORS
preflight). ``LocalGuard`` stops both while authentication is off:

* the ``Host`` header must name loopback (``localhost``, ``127.0.0.0/8``, ``[::1]``,
  any port): a rebound name arrives with the attacker's host name;
* a request that can change something (any method but GET, HEAD, OPTIONS, and every
  WebSocket) is refused when its ``Origin`` is not loopback or is ``null``, or when
  the browser marks it ``Sec-Fetch-Site: cross-site``. Clients that are not
  browsers send no ``Origin`` and pass.

With authentication on it passes everything through: keys, not the network, are
the control then. A pure ASGI middleware, so it wraps any app.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from luodi.config.security import SecuritySettings
from luodi.errors import PermissionDeniedError

__all__ = ["LocalGuard", "is_loopback", "is_loopback_host"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_host(host: str) -> bool:
    """``is_loopback`` for a Host header's name: spaces, a trailing dot and case ignored."""
    return is_loopback(host.strip().rstrip(".").lower())


def _authority_host(authority: str) -> str:
    """The host of ``host[:port]`` or ``[v6]:port``."""
    authority = authority.strip()
    if authority.startswith("["):
        return authority[: authority.find("]") + 1] if "]" in authority else authority
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def _loopback_origin(origin: str) -> bool:
    if origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and is_loopback_host(parts.hostname or "")


class LocalGuard:
    """ASGI middleware: refuses non-loopback Host and cross-origin writes when enabled.

    Args:
        app: The application to guard.
        enabled: Guard at all; ``LocalGuard.for_settings`` turns it on exactly when
            authentication is off.
    """

    def __init__(self, app: ASGIApp, *, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled

    @classmethod
    def for_settings(cls, app: ASGIApp, security: SecuritySettings) -> LocalGuard:
        """Guard ``app`` when ``security.auth_enabled`` is off."""
        return cls(app, enabled=not security.auth_enabled)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reason = self.refusal(scope)
        if reason is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
        else:
            await _deny(send, reason)

    @staticmethod
    def refusal(scope: Scope) -> str | None:
        """Why this request is refused, or None to let it through."""
        headers: dict[str, str] = {}
        for name, value in scope.get("headers") or []:
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        host = headers.get("host")
        if host is not None and not is_loopback_host(_authority_host(host)):
            return (
                f"Host {host!r} is not a loopback name: with authentication off only "
                "localhost, 127.0.0.1 and [::1] are served (DNS rebinding guard)"
            )
        if scope["type"] == "http" and scope.get("method", "GET").upper() in _SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None and not _loopback_origin(origin):
            return (
                f"cross-origin request from {origin!r} refused: with authentication off "
                "only pages on this machine's loopback address may send it"
            )
        if headers.get("sec-fetch-site", "").lower() == "cross-site":
            return "cross-site request refused while authentication is off"
        return None


async def _deny(send: Send, reason: str) -> None:
    body = json.dumps(PermissionDeniedError(reason).to_openai()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": PermissionDeniedError.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
