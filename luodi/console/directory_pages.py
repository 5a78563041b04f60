"""The directory's pages: users (create, disable, role grants), roles and tenants.

Each form is the admin API route of the same name (``users.create``,
``users.grant_role``, ``roles.update``, ``tenants.update``, ...) through
``Gateway.admin``: roles and tenants are global objects that need the global
``users:manage``; a user of another tenant, or one holding rights the signed-in
admin lacks, is refused as by the API.

No ``from __future__ import annotations``: FastAPI reads the routes' annotations.
"""

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from luodi.api.state import AppState
from luodi.console._actions import Actions, form_limits, form_list
from luodi.console.rendering import Pages
from luodi.errors import InvalidRequestError, LuodiError

__all__ = ["build_directory_pages"]


def build_directory_pages(state: AppState, pages: Pages, act: Actions) -> APIRouter:
    """``/users`` and ``/roles`` with their forms, to include under ``/console``."""
    router = APIRouter(include_in_schema=False)

    def done(where: str) -> Response:
        return RedirectResponse(f"/console/{where}", status_code=303)

    # -- users -----------------------------------------------------------------

    @router.get("/users")
    async def users(request: Request) -> Response:
        admin = state.gateway.admin
        try:
            found = await act(
                request,
                "users.list",
                "users:manage",
                {"tenant": None},
                lambda a: admin.list_users(a),
            )
            tenants = await act(request, "tenants.list", "users:manage", {}, admin.list_tenants)
            roles = await act(request, "roles.list", "users:manage", {}, admin.list_roles)
        except LuodiError as exc:
            return pages.error(request, exc)
        return pages.render(request, "users.html", users=found, tenants=tenants, roles=roles)

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
        return done("users")

    @router.post("/users/{name:path}/{change}")
    async def change_user(
        name: str,
        change: Literal["disable", "enable", "grant", "revoke", "password"],
        request: Request,
        role: Annotated[str, Form()] = "",
        password: Annotated[str, Form(max_length=1024)] = "",
    ) -> Response:
        """Disable or enable a user, grant or take one role (``role`` in the form), or set
        the user's sign-in password (never recorded: the audit detail names the user)."""
        admin = state.gateway.admin
        try:
            if change == "password":
                await act(
                    request,
                    "users.set_password",
                    "users:manage",
                    {"user": name},
                    lambda a: admin.set_password(a, name, password),
                )
                return done("users")
            if change in ("disable", "enable"):
                await act(
                    request,
                    f"users.{change}",
                    "users:manage",
                    {"user": name},
                    lambda a: admin.set_user_disabled(a, name, change == "disable"),
                )
                return done("users")
            if not role:
                raise InvalidRequestError("choose a role", param="role")
            grant = change == "grant"
            await act(
                request,
                "users.grant_role" if grant else "users.revoke_role",
                "users:manage",
                {"user": name, "role": role},
                lambda a: (admin.grant_role if grant else admin.revoke_role)(a, name, role),
            )
        except LuodiError as exc:
            return pages.error(request, exc)
        return done("users")

    # -- roles and tenants -----------------------------------------------------

    @router.get("/roles")
    async def roles(request: Request) -> Response:
        admin = state.gateway.admin
        try:
            found = await act(request, "roles.list", "users:manage", {}, admin.list_roles)
            tenants = await act(request, "tenants.list", "users:manage", {}, admin.list_tenants)
        except LuodiError as exc:
            return pages.error(request, exc)
        return pages.render(request, "roles.html", roles=found, tenants=tenants)

    @router.post("/roles")
    async def create_role(
        request: Request,
        name: Annotated[str, Form()],
        permissions: Annotated[str, Form()],
        description: Annotated[str, Form()] = "",
    ) -> Response:
        admin = state.gateway.admin
        wanted = form_list(permissions)
        detail = {"name": name, "permissions": wanted, "description": description}
        try:
            await act(
                request,
                "roles.create",
                "users:manage",
                detail,
                lambda a: admin.create_role(a, name.strip(), wanted, description=description),
            )
        except LuodiError as exc:
            return pages.error(request, exc)
        return done("roles")

    @router.post("/roles/{name:path}/{change}")
    async def change_role(
        name: str,
        change: Literal["update", "delete"],
        request: Request,
        permissions: Annotated[str, Form()] = "",
    ) -> Response:
        """Replace a custom role's permissions, or delete it."""
        admin = state.gateway.admin
        try:
            if change == "delete":
                await act(
                    request,
                    "roles.delete",
                    "users:manage",
                    {"role": name},
                    lambda a: admin.delete_role(a, name),
                )
            else:
                wanted = form_list(permissions)
                await act(
                    request,
                    "roles.update",
                    "users:manage",
                    {"role": name, "permissions": wanted},
                    lambda a: admin.set_role_permissions(a, name, wanted),
                )
        except LuodiError as exc:
            return pages.error(request, exc)
        return done("roles")

    @router.post("/tenants")
    async def create_tenant(
        request: Request,
        name: Annotated[str, Form()],
        rpm: Annotated[str, Form()] = "",
        tpm: Annotated[str, Form()] = "",
        tpd: Annotated[str, Form()] = "",
        pii_policy: Annotated[str, Form()] = "",
    ) -> Response:
        admin = state.gateway.admin
        try:
            limits = form_limits(rpm, tpm, tpd)
            policy = pii_policy.strip() or None
            detail: dict[str, Any] = {"name": name, "limits": asdict(limits), "pii_policy": policy}
            await act(
                request,
                "tenants.create",
                "users:manage",
                detail,
                lambda a: admin.create_tenant(a, name.strip(), limits=limits, pii_policy=policy),
            )
        except LuodiError as exc:
            return pages.error(request, exc)
        return done("roles")

    @router.post("/tenants/{name:path}/update")
    async def update_tenant(
        name: str,
        request: Request,
        rpm: Annotated[str, Form()] = "",
        tpm: Annotated[str, Form()] = "",
        tpd: Annotated[str, Form()] = "",
        pii_policy: Annotated[str, Form()] = "",
    ) -> Response:
        """Every field as shown: empty limits fall back to the defaults, an empty policy
        to the default policy."""
        admin = state.gateway.admin
        try:
            limits = form_limits(rpm, tpm, tpd)
            policy = pii_policy.strip() or None
            detail = {"tenant": name, "limits": asdict(limits), "pii_policy": policy}
            await act(
                request,
                "tenants.update",
                "users:manage",
                detail,
                lambda a: admin.update_tenant(
                    a, name, limits=limits, pii_policy=policy, clear_pii_policy=policy is None
                ),
            )
        except LuodiError as exc:
            return pages.error(request, exc)
        return done("roles")

    return router
