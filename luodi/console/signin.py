"""Sign-in and sign-out: an API key or a username and password opens a session.

The session acts as an API key (see ``luodi.security.console_sessions``): a key
sign-in acts as that key; a password sign-in creates a key for the user that
expires with the session and is revoked at sign-out. Attempts are rate-limited per
client address, wrong passwords lock the user's password sign-in, and every
attempt is audited (``console.login``, ``console.logout``).

No ``from __future__ import annotations``: FastAPI reads the routes' annotations.
"""

import asyncio
import hmac
import secrets
import time
from collections import deque
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from luodi.api.state import AppState
from luodi.config.console import ConsoleSettings
from luodi.console._actions import check_csrf
from luodi.console.rendering import Pages, principal_of, session_of
from luodi.errors import LuodiError
from luodi.security import AuditEvent, Decision, Principal
from luodi.security.console_sessions import SESSION_COOKIE, ConsoleSessions
from luodi.security.keys import hash_secret
from luodi.security.passwords import PasswordStore, SignIn

__all__ = ["build_signin_router"]

LOGIN_CSRF_COOKIE = "luodi_login_csrf"


class _AttemptWindow:
    """Sign-in attempts per client address in the last minute (in this process)."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}

    def allow(self, address: str) -> bool:
        now = time.monotonic()
        if len(self._seen) > 10_000:  # bounded: forget everyone rather than grow
            self._seen.clear()
        seen = self._seen.setdefault(address, deque())
        while seen and seen[0] <= now - 60:
            seen.popleft()
        if len(seen) >= self._per_minute:
            return False
        seen.append(now)
        return True


def build_signin_router(state: AppState, pages: Pages, settings: ConsoleSettings) -> APIRouter:
    """``/console/login`` (GET, POST) and ``/console/logout`` (POST)."""
    router = APIRouter(include_in_schema=False)
    window = _AttemptWindow(settings.sign_in_per_minute)
    ttl_s = settings.session_ttl_minutes * 60.0

    def sessions() -> ConsoleSessions:
        return ConsoleSessions(state.gateway.db, state.gateway.keys)

    def login_page(request: Request, error: str | None, status: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        response = pages.render(request, "login.html", status=status, error=error, login_csrf=token)
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/console/login",
        )
        return response

    async def audit(
        request: Request,
        principal: Principal | None,
        decision: Decision,
        reason: str,
        **detail: str,
    ) -> None:
        ip = state.gateway.client_address(request.scope)
        event = AuditEvent.for_request(
            principal,
            endpoint="console.login",
            kind="admin",
            decision=decision,
            reason=reason,
            source_ip=ip,
            detail=detail,
        )
        await state.gateway.audit(event)

    @router.get("/login")
    async def login_form(request: Request) -> Response:
        return login_page(request, None)

    @router.post("/login")
    async def login(
        request: Request,
        login_csrf: Annotated[str, Form()] = "",
        api_key: Annotated[str, Form()] = "",
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
    ) -> Response:
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(cookie.encode(), login_csrf.encode()):
            return login_page(request, "expired_form", 403)
        if not window.allow(state.gateway.client_address(request.scope)):
            await audit(request, None, Decision.DENIED, "sign-in rate limit", user=username)
            return login_page(request, "too_many", 429)
        if api_key:
            return await _with_key(request, api_key.strip())
        return await _with_password(request, username.strip(), password)

    async def _with_key(request: Request, secret: str) -> Response:
        keys = state.gateway.keys
        try:
            principal = await asyncio.to_thread(keys.resolve, secret)
        except LuodiError as exc:
            await audit(request, None, Decision.DENIED, exc.message, method="key")
            return login_page(request, "bad_key", 401)
        token, _ = await asyncio.to_thread(
            sessions().open,
            user=principal.user,
            key_sha256=hash_secret(secret),
            minted_key_id=None,
            ttl_s=ttl_s,
        )
        await audit(request, principal, Decision.ALLOWED, "signed in", method="key")
        return _signed_in(request, token)

    async def _with_password(request: Request, user: str, password: str) -> Response:
        lockout = settings.lockout_failures, settings.lockout_minutes * 60.0
        outcome = await asyncio.to_thread(
            PasswordStore(state.gateway.db).check,
            user,
            password,
            failures=lockout[0],
            lock_s=lockout[1],
        )
        if outcome is not SignIn.OK:
            reason = "locked" if outcome is SignIn.LOCKED else "bad_password"
            await audit(request, None, Decision.DENIED, reason, method="password", user=user)
            return login_page(request, reason, 401)
        expires_us = time.time_ns() // 1000 + int(ttl_s * 1_000_000)
        created = await asyncio.to_thread(
            state.gateway.keys.create, user, name="console session", expires_us=expires_us
        )
        principal = await asyncio.to_thread(state.gateway.keys.resolve, created.secret)
        token, _ = await asyncio.to_thread(
            sessions().open,
            user=user,
            key_sha256=hash_secret(created.secret),
            minted_key_id=created.info.id,
            ttl_s=ttl_s,
        )
        await audit(request, principal, Decision.ALLOWED, "signed in", method="password")
        return _signed_in(request, token)

    def _signed_in(request: Request, token: str) -> Response:
        response = RedirectResponse("/console/playground", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(ttl_s),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
        return response

    @router.post("/logout", dependencies=[Depends(check_csrf)])
    async def logout(request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if token is not None and session_of(request) is not None:
            await asyncio.to_thread(sessions().close, token)
            ip = state.gateway.client_address(request.scope)
            await state.gateway.audit(
                AuditEvent.for_request(
                    principal_of(request),
                    endpoint="console.logout",
                    kind="admin",
                    source_ip=ip,
                )
            )
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return router
