"""The console's pages: playground, users, API keys and the audit log.

Each page does what the admin API's route of the same name does, through the same
``Gateway.admin_action`` with the same action names, so RBAC, tenant scope, the
no-escalation rule and the audit record are the API's. A refusal is rendered as a
page with the API's status code (403 for a missing right).

No ``from __future__ import annotations``: FastAPI reads the routes' annotations.
"""

import io
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from luodi.api.state import AppState
from luodi.console.rendering import SECURITY_HEADERS, Pages, principal_of, session_of
from luodi.errors import (
    AuthenticationError,
    InvalidRequestError,
    LuodiError,
    NotFoundError,
    PermissionDeniedError,
)
from luodi.security import AuditFilter, Limits, Principal
from luodi.security.console_sessions import CSRF_HEADER, SAFE_METHODS

__all__ = ["build_pages_router"]

T = TypeVar("T")
_PAGE = 50


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


def _actor(request: Request) -> Principal:
    principal = principal_of(request)
    if principal is None:  # the gate authenticates every non-public console path
        raise AuthenticationError("sign in first")
    return principal


def _count(text: str, field: str) -> int | None:
    """A form's optional positive whole number (empty: no limit of its own)."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise InvalidRequestError(f"{field} must be a positive whole number", param=field)
    return int(text)


def _when(us: int | None) -> str:
    if us is None:
        return ""
    return datetime.fromtimestamp(us / 1e6, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def build_pages_router(state: AppState, pages: Pages) -> APIRouter:
    """The signed-in pages, to include under ``/console``."""
    router = APIRouter(dependencies=[Depends(check_csrf)], include_in_schema=False)

    async def act(
        request: Request,
        action: str,
        permission: str,
        detail: dict[str, Any],
        run: Callable[[Principal], T],
    ) -> T:
        actor = _actor(request)
        gateway = state.gateway
        return await gateway.admin_action(
            actor,
            action=action,
            permission=permission,
            detail=detail,
            run=lambda: run(actor),
            source_ip=gateway.client_address(request.scope),
            any_tenant=True,
        )

    @router.get("")
    @router.get("/")
    async def home() -> Response:
        return RedirectResponse("/console/playground", status_code=303)

    @router.get("/playground")
    async def playground(request: Request) -> Response:
        return pages.render(request, "playground.html")

    def script_page(request: Request, template: str, right: str) -> Response:
        """A page whose script calls the API itself; refused as the API would refuse it."""
        try:
            state.gateway.authorize(_actor(request), right)
        except LuodiError as exc:
            return pages.error(request, exc)
        return pages.render(request, template)

    @router.get("/knowledge")
    async def knowledge(request: Request) -> Response:
        # The list is the caller's to read (each collection's ACL decides): any user.
        return pages.render(request, "knowledge.html")

    @router.get("/privacy")
    async def privacy(request: Request) -> Response:
        return script_page(request, "privacy.html", "pii:use")

    @router.get("/dashboard")
    async def dashboard(request: Request) -> Response:
        return script_page(request, "dashboard.html", "metrics:read")

    # -- users -----------------------------------------------------------------

    async def users_page(request: Request, *, status: int = 200, **extra: Any) -> Response:
        admin = state.gateway.admin
        users = await act(
            request, "users.list", "users:manage", {"tenant": None}, lambda a: admin.list_users(a)
        )
        tenants = await act(request, "tenants.list", "users:manage", {}, admin.list_tenants)
        roles = await act(request, "roles.list", "users:manage", {}, admin.list_roles)
        return pages.render(
            request, "users.html", status=status, users=users, tenants=tenants, roles=roles, **extra
        )

    @router.get("/users")
    async def users(request: Request) -> Response:
        try:
            return await users_page(request)
        except LuodiError as exc:
            return pages.error(request, exc)

    @router.post("/users")
    async def create_user(
        request: Request,
        name: Annotated[str, Form()],
        tenant: Annotated[str, Form()] = "default",
        roles: Annotated[list[str] | None, Form()] = None,
    ) -> Response:
        admin = state.gateway.admin
        wanted = [r for r in roles or [] if r]
        try:
            await act(
                request,
                "users.create",
                "users:manage",
                {"name": name, "tenant": tenant, "roles": wanted},
                lambda a: admin.create_user(a, name.strip(), tenant=tenant, roles=wanted),
            )
        except LuodiError as exc:
            return pages.error(request, exc)
        return RedirectResponse("/console/users", status_code=303)

    @router.get("/roles")
    async def roles(request: Request) -> Response:
        admin = state.gateway.admin
        try:
            found = await act(request, "roles.list", "users:manage", {}, admin.list_roles)
            tenants = await act(request, "tenants.list", "users:manage", {}, admin.list_tenants)
        except LuodiError as exc:
            return pages.error(request, exc)
        return pages.render(request, "roles.html", roles=found, tenants=tenants)

    @router.post("/users/{name:path}/{change}")
    async def set_disabled(
        name: str, change: Literal["disable", "enable"], request: Request
    ) -> Response:
        admin = state.gateway.admin
        try:
            await act(
                request,
                f"users.{change}",
                "users:manage",
                {"user": name},
                lambda a: admin.set_user_disabled(a, name, change == "disable"),
            )
        except LuodiError as exc:
            return pages.error(request, exc)
        return RedirectResponse("/console/users", status_code=303)

    # -- keys ------------------------------------------------------------------

    async def keys_page(request: Request, created: dict[str, Any] | None = None) -> Response:
        admin = state.gateway.admin
        keys = await act(
            request,
            "keys.list",
            "keys:manage",
            {"user": None},
            lambda a: admin.list_keys(a, include_revoked=True),
        )
        rows = [
            {**asdict(k), "created": _when(k.created_us), "expires": _when(k.expires_us)}
            for k in keys
        ]
        status = 201 if created is not None else 200
        return pages.render(request, "keys.html", status=status, keys=rows, created=created)

    @router.get("/keys")
    async def keys(request: Request) -> Response:
        try:
            return await keys_page(request)
        except LuodiError as exc:
            return pages.error(request, exc)

    @router.post("/keys")
    async def create_key(
        request: Request,
        user: Annotated[str, Form()],
        name: Annotated[str, Form()] = "",
        expires_days: Annotated[str, Form()] = "",
        priority: Annotated[int, Form()] = 1,
        rpm: Annotated[str, Form()] = "",
        tpm: Annotated[str, Form()] = "",
        tpd: Annotated[str, Form()] = "",
        allowed_models: Annotated[str, Form()] = "",
    ) -> Response:
        admin = state.gateway.admin
        try:
            expires_us = None
            if expires_days.strip():
                if not expires_days.strip().isdigit() or int(expires_days) < 1:
                    raise InvalidRequestError("expiry must be a whole number of days")
                expires_us = int(datetime.now(tz=UTC).timestamp()) + int(expires_days) * 86400
                expires_us *= 1_000_000
            limits = Limits(_count(rpm, "rpm"), _count(tpm, "tpm"), _count(tpd, "tpd"))
            models = [m.strip() for m in allowed_models.split(",") if m.strip()] or None
            detail = {
                "user": user,
                "name": name,
                "priority": priority,
                "expires_us": expires_us,
                "limits": asdict(limits),
                "allowed_models": models,
            }
            created = await act(
                request,
                "keys.create",
                "keys:manage",
                detail,
                lambda a: admin.create_key(
                    a,
                    user.strip(),
                    name=name,
                    expires_us=expires_us,
                    priority=priority,
                    limits=limits,
                    allowed_models=models,
                ),
            )
            return await keys_page(request, {"key": created.secret, **asdict(created.info)})
        except LuodiError as exc:
            return pages.error(request, exc)

    @router.post("/keys/{key_id}/revoke")
    async def revoke_key(key_id: str, request: Request) -> Response:
        admin = state.gateway.admin
        try:
            await act(
                request,
                "keys.revoke",
                "keys:manage",
                {"key_id": key_id},
                lambda a: admin.revoke_key(a, key_id),
            )
        except LuodiError as exc:
            return pages.error(request, exc)
        return RedirectResponse("/console/keys", status_code=303)

    # -- audit -----------------------------------------------------------------

    def _filter(user: str | None, tenant: str | None, after_seq: int | None) -> AuditFilter:
        return AuditFilter(user=user or None, tenant=tenant or None, after_seq=after_seq)

    async def audit_page(
        request: Request,
        user: str | None,
        tenant: str | None,
        after_seq: int | None,
        report: dict[str, Any] | None = None,
    ) -> Response:
        admin = state.gateway.admin
        flt = _filter(user, tenant, after_seq)
        records = await act(
            request,
            "audit.query",
            "audit:read",
            {"user": flt.user, "tenant": flt.tenant, "after_seq": after_seq, "limit": _PAGE},
            lambda a: admin.query_audit(a, flt, limit=_PAGE),
        )
        for record in records:
            record["when"] = _when(record["ts_us"])
        next_seq = records[-1]["seq"] if len(records) == _PAGE else None
        return pages.render(
            request,
            "audit.html",
            records=records,
            report=report,
            next_seq=next_seq,
            user=flt.user or "",
            tenant=flt.tenant or "",
        )

    @router.get("/audit")
    async def audit(
        request: Request,
        user: str | None = None,
        tenant: str | None = None,
        after_seq: Annotated[int | None, Query(ge=0)] = None,
    ) -> Response:
        try:
            return await audit_page(request, user, tenant, after_seq)
        except LuodiError as exc:
            return pages.error(request, exc)

    @router.get("/audit/{seq}")
    async def audit_record(seq: int, request: Request) -> Response:
        admin = state.gateway.admin
        flt = AuditFilter(after_seq=seq - 1)
        try:
            found = await act(
                request,
                "audit.query",
                "audit:read",
                {"after_seq": seq - 1, "limit": 1},
                lambda a: admin.query_audit(a, flt, limit=1),
            )
            if not found or found[0]["seq"] != seq:
                raise NotFoundError(f"no audit record {seq} you may read")
        except LuodiError as exc:
            return pages.error(request, exc)
        return pages.render(request, "audit_record.html", record=found[0])

    @router.post("/audit/verify")
    async def verify(request: Request) -> Response:
        admin = state.gateway.admin
        try:
            report = await act(
                request, "audit.verify", "audit:read", {}, lambda a: admin.verify_audit(a)
            )
            return await audit_page(request, None, None, None, asdict(report))
        except LuodiError as exc:
            return pages.error(request, exc)

    @router.get("/audit/export")
    async def export(
        request: Request,
        format: Literal["jsonl", "csv"] = "jsonl",
        user: str | None = None,
        tenant: str | None = None,
    ) -> Response:
        admin = state.gateway.admin
        flt = _filter(user, tenant, None)

        def run(actor: Principal) -> str:
            buffer = io.StringIO()
            admin.export_audit(actor, flt, buffer, fmt=format)
            return buffer.getvalue()

        try:
            body = await act(
                request,
                "audit.export",
                "audit:read",
                {"format": format, "user": flt.user, "tenant": flt.tenant},
                run,
            )
        except LuodiError as exc:
            return pages.error(request, exc)
        media = "text/csv" if format == "csv" else "application/x-ndjson"
        headers = {
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="audit.{format}"',
        }
        return Response(body, media_type=media, headers=headers)

    return router
