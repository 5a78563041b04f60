"""The admin REST API: keys, users, roles, tenants, and the audit log for auditors.

Every route authenticates like the OpenAI routes, checks one permission
(``keys:manage``, ``users:manage`` or ``audit:read``, held in at least one tenant) and
is audited as an admin action, reads of the audit log included. The work itself
goes through ``Gateway.admin`` (``luodi.security.administration``), which applies
the tenant scope and refuses to hand out rights the caller lacks. The client's
address comes from ``Gateway.client_address`` (trusted proxies only). Errors are
``LuodiError``s, mapped to OpenAI-shaped bodies by the application's single handler.

No ``from __future__ import annotations`` here: FastAPI must see the real
annotations of routes defined inside ``build_admin_router``.
"""

import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from luodi.api.admin.schemas import (
    KeyCreate,
    KeyUpdate,
    LimitsBody,
    PasswordSet,
    RoleCreate,
    RoleUpdate,
    TenantCreate,
    TenantUpdate,
    UserCreate,
)
from luodi.api.request_gate import PRINCIPAL_KEY
from luodi.errors import ServiceUnavailableError
from luodi.security import AuditFilter, Gateway, Limits, Principal
from luodi.security.audit import Checkpoint
from luodi.security.keys import KeyChanges

__all__ = ["build_admin_router"]

T = TypeVar("T")


def _us(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1_000_000)


def _limits(body: LimitsBody | None) -> Limits | None:
    return None if body is None else Limits(**body.model_dump())


def key_changes(body: KeyUpdate) -> KeyChanges:
    """The change a ``PATCH /admin/keys/{id}`` body asks for (an explicit null clears)."""
    nullable = (
        ("allowed_models", "allowed_models"),
        ("ip_allowlist", "ip_allowlist"),
        ("expires_at", "expires_us"),
    )
    clear = frozenset(
        field
        for wire, field in nullable
        if wire in body.model_fields_set and getattr(body, wire) is None
    )
    return KeyChanges(
        name=body.name,
        priority=body.priority,
        limits=_limits(body.limits),
        allowed_models=body.allowed_models,
        ip_allowlist=body.ip_allowlist,
        expires_us=_us(body.expires_at),
        clear=clear,
    )


def build_admin_router(gateway: Gateway) -> APIRouter:
    """Routes to mount at ``/admin``, bound to one Gateway."""
    router = APIRouter(tags=["admin"])

    async def current_principal(request: Request) -> Principal:
        found: Principal | None = getattr(request.state, PRINCIPAL_KEY, None)
        if found is not None:  # the RequestGate's: a key, or a console session (CSRF checked)
            return found
        client_ip = gateway.client_address(request.scope)
        return await gateway.authenticate(request.headers.get("authorization"), client_ip)

    PrincipalDep = Annotated[Principal, Depends(current_principal)]

    async def act(
        request: Request,
        actor: Principal,
        action: str,
        permission: str,
        detail: dict[str, Any],
        run: Callable[[], T],
    ) -> T:
        return await gateway.admin_action(
            actor,
            action=action,
            permission=permission,
            detail=detail,
            run=run,
            source_ip=gateway.client_address(request.scope),
            any_tenant=True,
        )

    # -- keys ------------------------------------------------------------------

    @router.post("/keys", status_code=201)
    async def create_key(body: KeyCreate, request: Request, actor: PrincipalDep) -> dict[str, Any]:
        created = await act(
            request,
            actor,
            "keys.create",
            "keys:manage",
            body.model_dump(mode="json"),
            lambda: gateway.admin.create_key(
                actor,
                body.user,
                name=body.name,
                expires_us=_us(body.expires_at),
                allowed_models=body.allowed_models,
                ip_allowlist=body.ip_allowlist,
                priority=body.priority,
                limits=Limits(**body.limits.model_dump()),
            ),
        )
        return {"key": created.secret, **asdict(created.info)}

    @router.get("/keys")
    async def list_keys(
        request: Request,
        actor: PrincipalDep,
        user: str | None = None,
        include_revoked: bool = False,
    ) -> list[dict[str, Any]]:
        keys = await act(
            request,
            actor,
            "keys.list",
            "keys:manage",
            {"user": user},
            lambda: gateway.admin.list_keys(actor, user=user, include_revoked=include_revoked),
        )
        return [asdict(k) for k in keys]

    @router.get("/keys/usage")
    async def key_usage(
        request: Request,
        actor: PrincipalDep,
        since: datetime | None = None,
        hours: Annotated[float, Query(gt=0, le=24 * 366)] = 24,
    ) -> list[dict[str, Any]]:
        """Requests and tokens per key (from the audit log) since ``since``, else ``hours`` ago."""
        since_us = _us(since) or int((time.time() - hours * 3600) * 1_000_000)
        usage = await act(
            request,
            actor,
            "keys.usage",
            "keys:manage",
            {"since_us": since_us},
            lambda: gateway.admin.key_usage(actor, since_us=since_us),
        )
        return [asdict(u) for u in usage]

    @router.patch("/keys/{key_id}")
    async def update_key(
        key_id: str, body: KeyUpdate, request: Request, actor: PrincipalDep
    ) -> dict[str, Any]:
        changes = key_changes(body)
        info = await act(
            request,
            actor,
            "keys.update",
            "keys:manage",
            {"key_id": key_id, **body.model_dump(mode="json", exclude_unset=True)},
            lambda: gateway.admin.update_key(actor, key_id, changes),
        )
        return asdict(info)

    @router.delete("/keys/{key_id}")
    async def revoke_key(key_id: str, request: Request, actor: PrincipalDep) -> dict[str, Any]:
        info = await act(
            request,
            actor,
            "keys.revoke",
            "keys:manage",
            {"key_id": key_id},
            lambda: gateway.admin.revoke_key(actor, key_id),
        )
        return asdict(info)

    # -- users -----------------------------------------------------------------

    @router.post("/users", status_code=201)
    async def create_user(
        body: UserCreate, request: Request, actor: PrincipalDep
    ) -> dict[str, Any]:
        info = await act(
            request,
            actor,
            "users.create",
            "users:manage",
            body.model_dump(),
            lambda: gateway.admin.create_user(
                actor, body.name, tenant=body.tenant, roles=body.roles
            ),
        )
        return asdict(info)

    @router.get("/users")
    async def list_users(
        request: Request, actor: PrincipalDep, tenant: str | None = None
    ) -> list[dict[str, Any]]:
        users = await act(
            request,
            actor,
            "users.list",
            "users:manage",
            {"tenant": tenant},
            lambda: gateway.admin.list_users(actor, tenant=tenant),
        )
        return [asdict(u) for u in users]

    @router.put("/users/{name}/roles/{role}")
    async def grant_role(
        name: str, role: str, request: Request, actor: PrincipalDep
    ) -> dict[str, Any]:
        info = await act(
            request,
            actor,
            "users.grant_role",
            "users:manage",
            {"user": name, "role": role},
            lambda: gateway.admin.grant_role(actor, name, role),
        )
        return asdict(info)

    @router.put("/users/{name}/password", status_code=204)
    async def set_password(
        name: str, body: PasswordSet, request: Request, actor: PrincipalDep
    ) -> Response:
        await act(
            request,
            actor,
            "users.set_password",
            "users:manage",
            {"user": name},  # never the password
            lambda: gateway.admin.set_password(actor, name, body.password),
        )
        return Response(status_code=204)

    @router.delete("/users/{name}/roles/{role}")
    async def revoke_role(
        name: str, role: str, request: Request, actor: PrincipalDep
    ) -> dict[str, Any]:
        info = await act(
            request,
            actor,
            "users.revoke_role",
            "users:manage",
            {"user": name, "role": role},
            lambda: gateway.admin.revoke_role(actor, name, role),
        )
        return asdict(info)

    # -- roles -----------------------------------------------------------------

    @router.post("/roles", status_code=201)
    async def create_role(
        body: RoleCreate, request: Request, actor: PrincipalDep
    ) -> dict[str, Any]:
        info = await act(
            request,
            actor,
            "roles.create",
            "users:manage",
            body.model_dump(),
            lambda: gateway.admin.create_role(
                actor, body.name, body.permissions, description=body.description
            ),
        )
        return asdict(info)

    @router.get("/roles")
    async def list_roles(request: Request, actor: PrincipalDep) -> list[dict[str, Any]]:
        roles = await act(
            request,
            actor,
            "roles.list",
            "users:manage",
            {},
            lambda: gateway.admin.list_roles(actor),
        )
        return [asdict(r) for r in roles]

    @router.put("/roles/{name}")
    async def update_role(
        name: str, body: RoleUpdate, request: Request, actor: PrincipalDep
    ) -> dict[str, Any]:
        info = await act(
            request,
            actor,
            "roles.update",
            "users:manage",
            {"role": name, **body.model_dump()},
            lambda: gateway.admin.set_role_permissions(actor, name, body.permissions),
        )
        return asdict(info)

    @router.delete("/roles/{name}", status_code=204)
    async def delete_role(name: str, request: Request, actor: PrincipalDep) -> Response:
        await act(
            request,
            actor,
            "roles.delete",
            "users:manage",
            {"role": name},
            lambda: gateway.admin.delete_role(actor, name),
        )
        return Response(status_code=204)

    # -- tenants ---------------------------------------------------------------

    @router.post("/tenants", status_code=201)
    async def create_tenant(
        body: TenantCreate, request: Request, actor: PrincipalDep
    ) -> dict[str, Any]:
        info = await act(
            request,
            actor,
            "tenants.create",
            "users:manage",
            body.model_dump(),
            lambda: gateway.admin.create_tenant(
                actor,
                body.name,
                limits=Limits(**body.limits.model_dump()),
                pii_policy=body.pii_policy,
            ),
        )
        return asdict(info)

    @router.patch("/tenants/{name}")
    async def update_tenant(
        name: str, body: TenantUpdate, request: Request, actor: PrincipalDep
    ) -> dict[str, Any]:
        clear = "pii_policy" in body.model_fields_set and body.pii_policy is None
        info = await act(
            request,
            actor,
            "tenants.update",
            "users:manage",
            {"tenant": name, **body.model_dump(exclude_unset=True)},
            lambda: gateway.admin.update_tenant(
                actor,
                name,
                limits=_limits(body.limits),
                pii_policy=body.pii_policy,
                clear_pii_policy=clear,
            ),
        )
        return asdict(info)

    @router.get("/tenants")
    async def list_tenants(request: Request, actor: PrincipalDep) -> list[dict[str, Any]]:
        tenants = await act(
            request,
            actor,
            "tenants.list",
            "users:manage",
            {},
            lambda: gateway.admin.list_tenants(actor),
        )
        return [asdict(t) for t in tenants]

    # -- audit -----------------------------------------------------------------

    def _filter(
        since: datetime | None, until: datetime | None, user: str | None, tenant: str | None
    ) -> AuditFilter:
        return AuditFilter(since_us=_us(since), until_us=_us(until), user=user, tenant=tenant)

    @router.get("/audit")
    async def query_audit(
        request: Request,
        actor: PrincipalDep,
        since: datetime | None = None,
        until: datetime | None = None,
        user: str | None = None,
        tenant: str | None = None,
        after_seq: int | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> list[dict[str, Any]]:
        flt = _filter(since, until, user, tenant)
        flt = AuditFilter(**{**asdict(flt), "after_seq": after_seq})
        return await act(
            request,
            actor,
            "audit.query",
            "audit:read",
            {"user": user, "tenant": tenant, "after_seq": after_seq, "limit": limit},
            lambda: gateway.admin.query_audit(actor, flt, limit=limit),
        )

    @router.get("/audit/export")
    async def export_audit(
        request: Request,
        actor: PrincipalDep,
        format: Literal["jsonl", "csv"] = "jsonl",
        since: datetime | None = None,
        until: datetime | None = None,
        user: str | None = None,
        tenant: str | None = None,
    ) -> Response:
        flt = _filter(since, until, user, tenant)

        def run() -> str:
            buffer = io.StringIO()
            gateway.admin.export_audit(actor, flt, buffer, fmt=format)
            return buffer.getvalue()

        body = await act(
            request,
            actor,
            "audit.export",
            "audit:read",
            {"format": format, "user": user, "tenant": tenant},
            run,
        )
        media = "text/csv" if format == "csv" else "application/x-ndjson"
        return Response(body, media_type=media)

    @router.get("/audit/verify")
    async def verify_audit(request: Request, actor: PrincipalDep) -> dict[str, Any]:
        report = await act(
            request,
            actor,
            "audit.verify",
            "audit:read",
            {},
            lambda: gateway.admin.verify_audit(actor),
        )
        return asdict(report)

    @router.post("/audit/verify")
    async def verify_audit_against(
        checkpoints: list[dict[str, Any]], request: Request, actor: PrincipalDep
    ) -> dict[str, Any]:
        """Verify, and check the chain against checkpoints kept elsewhere (JSON array)."""
        parsed = [Checkpoint.from_json(c) for c in checkpoints]
        report = await act(
            request,
            actor,
            "audit.verify",
            "audit:read",
            {"checkpoints": [c.seq for c in parsed]},
            lambda: gateway.admin.verify_audit(actor, parsed),
        )
        return asdict(report)

    @router.get("/audit/checkpoint")
    async def checkpoint_audit(request: Request, actor: PrincipalDep) -> dict[str, Any]:
        report, made = await act(
            request,
            actor,
            "audit.checkpoint",
            "audit:read",
            {},
            lambda: gateway.admin.checkpoint_audit(actor),
        )
        if made is None:
            raise ServiceUnavailableError(
                f"no checkpoint of a broken audit chain: record {report.first_bad_seq}: "
                f"{report.problem}"
            )
        return {**json.loads(made.to_json()), "verify": asdict(report)}

    return router
