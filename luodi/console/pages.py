"""The console's signed-in pages: the playground, the script pages and the audit log.

The directory's pages (users, roles, tenants) and the keys page live beside this
module and are included here. Each page does what the admin API's route of the same
name does, through the same ``Gateway.admin_action`` with the same action names, so
RBAC, tenant scope, the no-escalation rule and the audit record are the API's. A
refusal is rendered as a page with the API's status code (403 for a missing right).

No ``from __future__ import annotations``: FastAPI reads the routes' annotations.
"""

import io
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from luodi.api.state import AppState
from luodi.console._actions import Actions, actor_of, check_csrf, when
from luodi.console.directory_pages import build_directory_pages
from luodi.console.key_pages import build_key_pages
from luodi.console.rendering import SECURITY_HEADERS, Pages
from luodi.errors import LuodiError, NotFoundError
from luodi.security import AuditFilter, Principal
from luodi.security.rbac import grants_in_some_tenant

__all__ = ["build_pages_router"]

_PAGE = 50


def build_pages_router(state: AppState, pages: Pages) -> APIRouter:
    """The signed-in pages, to include under ``/console``."""
    router = APIRouter(dependencies=[Depends(check_csrf)], include_in_schema=False)

    act = Actions(state)
    router.include_router(build_directory_pages(state, pages, act))
    router.include_router(build_key_pages(state, pages, act))

    @router.get("")
    @router.get("/")
    async def home() -> Response:
        return RedirectResponse("/console/playground", status_code=303)

    @router.get("/playground")
    async def playground(request: Request) -> Response:
        return pages.render(request, "playground.html")

    def script_page(request: Request, template: str, right: str, **context: Any) -> Response:
        """A page whose script calls the API itself; refused as the API would refuse it."""
        try:
            state.gateway.authorize(actor_of(request), right)
        except LuodiError as exc:
            return pages.error(request, exc)
        return pages.render(request, template, **context)

    @router.get("/knowledge")
    async def knowledge(request: Request) -> Response:
        # The list is the caller's to read (each collection's ACL decides): any user.
        return pages.render(request, "knowledge.html")

    @router.get("/privacy")
    async def privacy(request: Request) -> Response:
        return script_page(request, "privacy.html", "pii:use")

    @router.get("/dashboard")
    async def dashboard(request: Request) -> Response:
        # Per-key usage is the keys admin's to read (GET /admin/keys/usage, tenant-scoped).
        usage = grants_in_some_tenant(actor_of(request).permissions, "keys:manage")
        return script_page(request, "dashboard.html", "metrics:read", show_usage=usage)

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
            record["when"] = when(record["ts_us"])
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
