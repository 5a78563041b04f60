"""Rendering console pages: autoescaped Jinja2, the language, and the security headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from luodi.api.request_gate import PRINCIPAL_KEY, SESSION_KEY
from luodi.console.i18n import LANG_COOKIE, LANGUAGES, translator
from luodi.errors import LuodiError
from luodi.security import Principal
from luodi.security.console_sessions import SessionInfo
from luodi.security.rbac import grants, grants_in_some_tenant

__all__ = ["SECURITY_HEADERS", "Pages", "language", "principal_of", "session_of"]

_HERE = Path(__file__).parent

SECURITY_HEADERS = {
    # Scripts and styles only from the console's own static files: no inline code runs.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""Sent with every console page."""

# Page → the right (held in some tenant) a principal needs to see it in the menu.
_NAV = (
    ("playground", "/console/playground", None),
    ("users", "/console/users", "users:manage"),
    ("roles", "/console/roles", "users:manage"),
    ("keys", "/console/keys", "keys:manage"),
    ("audit", "/console/audit", "audit:read"),
    ("knowledge", "/console/knowledge", None),
    ("privacy", "/console/privacy", "pii:use"),
    ("dashboard", "/console/dashboard", "metrics:read"),
)


def language(request: Request) -> str:
    """``?lang=``, else the cookie, else the browser's first choice, else English."""
    for candidate in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if candidate is not None and candidate in LANGUAGES:
            return candidate
    accept = request.headers.get("accept-language", "")
    return "zh" if accept.lower().startswith("zh") else "en"


def principal_of(request: Request) -> Principal | None:
    """Who the gate authenticated for this request (None on the public pages)."""
    found: Principal | None = getattr(request.state, PRINCIPAL_KEY, None)
    return found


def session_of(request: Request) -> SessionInfo | None:
    """The console session the request came with (None when it used a key header)."""
    found: SessionInfo | None = getattr(request.state, SESSION_KEY, None)
    return found


def may_see(principal: Principal, right: str | None) -> bool:
    """True when the menu shows a page needing ``right`` to this principal."""
    return right is None or grants_in_some_tenant(principal.permissions, right)


def may(principal: Principal | None, right: str) -> bool:
    """True when ``right`` is granted outright (a button shown only to those who may)."""
    return principal is not None and grants(principal.permissions, right)


class Pages:
    """The console's template environment; renders pages with the common context."""

    def __init__(self) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,  # every value is escaped: names, reasons, audit fields
            undefined=jinja2.StrictUndefined,
        )

    def render(
        self, request: Request, template: str, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """The page ``template`` in the request's language, with the security headers."""
        lang = language(request)
        principal = principal_of(request)
        session = session_of(request)
        nav = (
            [(name, href) for name, href, right in _NAV if may_see(principal, right)]
            if principal is not None
            else []
        )
        html = self._env.get_template(template).render(
            t=translator(lang),
            lang=lang,
            other_lang="en" if lang == "zh" else "zh",
            principal=principal,
            csrf=session.csrf if session is not None else "",
            nav=nav,
            may=lambda right: may(principal, right),
            path=request.url.path,
            **context,
        )
        response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
        if request.query_params.get("lang") in LANGUAGES:
            response.set_cookie(
                LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict", httponly=True
            )
        return response

    def error(self, request: Request, exc: LuodiError) -> HTMLResponse:
        """A refusal as a page, with the API's status code (403 for a missing right)."""
        return self.render(
            request,
            "error.html",
            status=exc.status_code,
            message=exc.message,
            status_code=exc.status_code,
        )
