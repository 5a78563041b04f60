"""The API keys page: list, create (the secret shown once), change quotas, revoke.

Each form is the admin API route of the same name (``keys.list``, ``keys.create``,
``keys.update``, ``keys.revoke``) through ``Gateway.admin``: a key of another tenant,
or of a user holding rights the signed-in admin lacks, is refused as by the API.

No ``from __future__ import annotations``: FastAPI reads the routes' annotations.
"""

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from luodi.api.state import AppState
from luodi.console._actions import Actions, form_days, form_limits, form_list, when
from luodi.console.rendering import Pages
from luodi.errors import LuodiError
from luodi.security.keys import KeyChanges

__all__ = ["build_key_pages"]


def build_key_pages(state: AppState, pages: Pages, act: Actions) -> APIRouter:
    """``/keys`` and its forms, to include under ``/console``."""
    router = APIRouter(include_in_schema=False)

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
            {**asdict(k), "created": when(k.created_us), "expires": when(k.expires_us)}
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
            expires_us = form_days(expires_days)
            limits = form_limits(rpm, tpm, tpd)
            models = form_list(allowed_models) or None
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

    @router.post("/keys/{key_id}/update")
    async def update_key(
        key_id: str,
        request: Request,
        name: Annotated[str, Form()] = "",
        priority: Annotated[int, Form()] = 1,
        rpm: Annotated[str, Form()] = "",
        tpm: Annotated[str, Form()] = "",
        tpd: Annotated[str, Form()] = "",
        allowed_models: Annotated[str, Form()] = "",
        expires_days: Annotated[str, Form()] = "",
        never_expires: Annotated[bool, Form()] = False,
    ) -> Response:
        """The edit form: every field as shown; an empty expiry keeps the current one."""
        admin = state.gateway.admin
        try:
            models = form_list(allowed_models) or None
            expires_us = None if never_expires else form_days(expires_days)
            clear = {"allowed_models"} if models is None else set()
            if never_expires:
                clear.add("expires_us")
            changes = KeyChanges(
                name=name,
                priority=priority,
                limits=form_limits(rpm, tpm, tpd),
                allowed_models=models,
                expires_us=expires_us,
                clear=frozenset(clear),
            )
            detail = {
                "key_id": key_id,
                "name": name,
                "priority": priority,
                "limits": asdict(changes.limits) if changes.limits else None,
                "allowed_models": models,
                "expires_us": expires_us,
                "cleared": sorted(clear),
            }
            await act(
                request,
                "keys.update",
                "keys:manage",
                detail,
                lambda a: admin.update_key(a, key_id, changes),
            )
        except LuodiError as exc:
            return pages.error(request, exc)
        return RedirectResponse("/console/keys", status_code=303)

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

    return router
