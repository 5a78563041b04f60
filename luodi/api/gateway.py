"""The gateway chain as the API runs it: who is calling, may they, and the audit trail.

Routes stay thin: they take a ``PrincipalDep`` and open a ``Trail`` for the model
they are about to invoke; the trail authorizes, admits against quotas, and writes
exactly one audit record, allowed or denied, however the request ends.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from luodi.api.deps import StateDep
from luodi.engine.types import Priority, Usage
from luodi.errors import LuodiError
from luodi.security import AuditEvent, Decision, Gateway, Principal

__all__ = ["PrincipalDep", "Trail", "client_ip", "get_principal"]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def get_principal(request: Request, state: StateDep) -> Principal:
    """Authenticate the caller; a refusal is audited before it is raised."""
    gateway = state.gateway
    try:
        return await gateway.authenticate(request.headers.get("authorization"), client_ip(request))
    except LuodiError as exc:
        await gateway.audit(
            AuditEvent.for_request(
                None,
                endpoint=request.url.path,
                decision=Decision.DENIED,
                reason=exc.message,
                source_ip=client_ip(request),
            )
        )
        raise


PrincipalDep = Annotated[Principal, Depends(get_principal)]


@dataclass
class Trail:
    """One model invocation's passage through the gateway, and its audit record."""

    gateway: Gateway
    principal: Principal
    endpoint: str
    source_ip: str
    model: str
    prompt: str = ""
    started: float = field(default_factory=time.monotonic)
    response: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    backend: str | None = None
    pii_findings: dict[str, int] = field(default_factory=dict)
    _closed: bool = False

    @classmethod
    def open(cls, gateway: Gateway, principal: Principal, request: Request, model: str) -> Trail:
        return cls(gateway, principal, request.url.path, client_ip(request), model)

    @property
    def priority(self) -> Priority:
        return Priority(self.principal.priority)

    @contextlib.asynccontextmanager
    async def guarding(self) -> AsyncIterator[None]:
        """Audit a refusal raised inside (bad request, denied, over quota) as denied."""
        try:
            yield
        except LuodiError as exc:
            await self._write(Decision.DENIED, exc.message)
            raise

    def authorize(self) -> None:
        self.gateway.authorize(self.principal, f"model:{self.model}:invoke")

    async def admit(self, tokens: int) -> None:
        await self.gateway.admit(self.principal, tokens=tokens)

    async def finish(self) -> None:
        """Charge the real usage and write the allowed record (once)."""
        if self._closed:
            return
        await self.gateway.record_usage(self.principal, tokens=self.usage.total_tokens)
        await self._write(Decision.ALLOWED, None)

    async def _write(self, decision: Decision, reason: str | None) -> None:
        if self._closed:
            return
        self._closed = True
        await self.gateway.audit(
            AuditEvent.for_request(
                self.principal,
                endpoint=self.endpoint,
                prompt=self.prompt,
                response="".join(self.response),
                decision=decision,
                reason=reason,
                source_ip=self.source_ip,
                model=self.model,
                backend=self.backend,
                prompt_tokens=self.usage.prompt_tokens,
                completion_tokens=self.usage.completion_tokens,
                latency_ms=(time.monotonic() - self.started) * 1000,
                pii_findings=self.pii_findings,
            )
        )
