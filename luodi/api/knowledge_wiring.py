"""How the knowledge base meets the gateway: permission checks, callers and audit records."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from fastapi import Request

from luodi.api.gateway import audit_denial, get_principal
from luodi.api.knowledge_caller import kb_caller
from luodi.api.state import AppState
from luodi.errors import LuodiError
from luodi.knowledge.access import Caller
from luodi.security import AuditEvent, Gateway

__all__ = ["KnowledgeAudit", "kb_authorizer", "kb_caller"]


def kb_authorizer(state: AppState) -> Any:
    """``authorize(request, permission)`` for the knowledge routes: a denial is audited.

    Returns the ``Caller``; a ``None`` permission only authenticates.
    """

    async def authorize(request: Request, permission: str | None) -> Caller:
        principal = await get_principal(request, state)
        if permission is not None:
            try:
                state.gateway.authorize(principal, permission)
            except LuodiError as exc:
                await audit_denial(state.gateway, principal, request, exc)
                raise
        return kb_caller(principal)

    return authorize


class KnowledgeAudit:
    """The knowledge service's audit sink (syncs, erasures) over the gateway's audit log.

    The service calls it from worker threads; records are handed to the event loop.
    """

    def __init__(self, gateway: Gateway, loop: asyncio.AbstractEventLoop) -> None:
        self._gateway = gateway
        self._loop = loop

    def record(self, action: str, resource: str, detail: Mapping[str, Any]) -> None:
        event = AuditEvent.for_request(
            None,
            endpoint=f"knowledge.{action}",
            kind="admin",
            detail={"resource": resource, **detail},
        )
        coro = self._gateway.audit(event)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._loop.create_task(coro)
        else:
            asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)
