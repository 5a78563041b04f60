"""Who is calling: authentication for the API's routes, and the audit of a refusal.

What happens next, for a model request, is the gateway pipeline's
(``luodi.api.pipeline``): authorize, ground, fit, protect, route, limit, launch,
then restore and audit.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from luodi.api.deps import StateDep
from luodi.api.pipeline import client_ip
from luodi.api.request_gate import PRINCIPAL_KEY
from luodi.errors import LuodiError
from luodi.security import AuditEvent, Decision, Gateway, Principal

__all__ = [
    "PrincipalDep",
    "audit_denial",
    "client_ip",
    "get_principal",
]


async def audit_denial(
    gateway: Gateway, principal: Principal | None, request: Request, exc: LuodiError
) -> None:
    """Record a refused request (unauthenticated when ``principal`` is None)."""
    await gateway.audit(
        AuditEvent.for_request(
            principal,
            endpoint=request.url.path,
            decision=Decision.DENIED,
            reason=exc.message,
            source_ip=client_ip(request),
        )
    )


async def get_principal(request: Request, state: StateDep) -> Principal:
    """Authenticate the caller; a refusal is audited before it is raised."""
    principal: Principal | None = getattr(request.state, PRINCIPAL_KEY, None)
    if principal is not None:  # the RequestGate did it before reading the body
        return principal
    try:
        return await state.gateway.authenticate(
            request.headers.get("authorization"), client_ip(request)
        )
    except LuodiError as exc:
        await audit_denial(state.gateway, None, request, exc)
        raise


PrincipalDep = Annotated[Principal, Depends(get_principal)]
