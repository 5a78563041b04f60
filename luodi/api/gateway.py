"""The gateway chain as the API runs it: who is calling, may they, and the audit trail.

Routes stay thin: they take a ``PrincipalDep`` and open a ``Trail`` for the model
they are about to invoke; the trail authorizes, admits against quotas, and writes
exactly one audit record, allowed or denied, however the request ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from fastapi import Depends, Request

from luodi.api.deps import StateDep
from luodi.api.drain import SHUTTING_DOWN, Drain
from luodi.api.openai.generation import prime_all
from luodi.api.request_gate import PRINCIPAL_KEY
from luodi.engine.base import Engine
from luodi.engine.types import (
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    Priority,
    Usage,
)
from luodi.errors import LuodiError, ServiceUnavailableError
from luodi.privacy import PIIStage, ProtectedInput
from luodi.security import AuditEvent, Decision, Gateway, Principal

if TYPE_CHECKING:
    from luodi.api.state import AppState

__all__ = [
    "PrincipalDep",
    "TextRestorer",
    "Trail",
    "audit_denial",
    "client_ip",
    "get_principal",
]


class TextRestorer(Protocol):
    """Restores pseudonyms in streamed text; a whole text is one ``feed`` plus ``flush``."""

    def feed(self, delta: str) -> str: ...

    def flush(self) -> str: ...


class _Identity:
    """The restorer when nothing was masked."""

    def feed(self, delta: str) -> str:
        return delta

    def flush(self) -> str:
        return ""


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


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
    pii: PIIStage | None = None
    force_pii: bool = False
    """Mask whatever the key's policy says: the request may leave the premises."""
    conversation_id: str = ""
    protected: list[ProtectedInput] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the audit record's reason says of an allowed request: failovers, a cut stream."""
    drain: Drain | None = None
    """The server's requests in flight; this trail is one until its record is written."""
    aborted: str | None = None
    """Why the server ended this request early (shutting down), if it did."""
    _engine: Engine | None = None
    _launched: list[GenerationRequest] = field(default_factory=list)
    _closed: bool = False

    @classmethod
    def open(cls, state: AppState, principal: Principal, request: Request, model: str) -> Trail:
        conversation = request.headers.get("x-luodi-conversation") or uuid.uuid4().hex
        return cls(
            state.gateway,
            principal,
            request.url.path,
            client_ip(request),
            model,
            pii=state.pii,
            force_pii=state.leaves_premises(model),
            # The tenant is part of the id, so tenants never share a pseudonym map.
            conversation_id=f"{principal.tenant}:{conversation}",
            drain=state.drain,
        )

    def __post_init__(self) -> None:
        if self.drain is not None:
            self.drain.enter(self)

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
        except asyncio.CancelledError:
            # The client hung up (or the server is shutting down): still one record.
            await self._write(Decision.ALLOWED, "; ".join([*self.notes, "cancelled"]))
            raise
        except Exception as exc:  # a 500: the handler maps it, the record is owed here
            await self._write(Decision.DENIED, f"internal error: {type(exc).__name__}")
            raise

    def authorize(self) -> None:
        self.gateway.authorize(self.principal, f"model:{self.model}:invoke")

    async def admit(self, tokens: int) -> None:
        """Admit against quotas; nothing is admitted once the server is draining."""
        if self.drain is not None and self.drain.draining:
            raise ServiceUnavailableError(SHUTTING_DOWN, retry_after=1.0)
        await self.gateway.admit(self.principal, tokens=tokens)

    def abort(self, reason: str) -> None:
        """End this request's generations early; ``checked`` and ``raise_if_aborted`` say why."""
        self.aborted = reason
        if self._engine is not None:
            for req in self._launched:
                self._engine.abort(req.request_id)

    def checked(self, event: GenerationEvent) -> GenerationEvent:
        """``event``, with a cancellation this trail's ``abort`` caused made an error."""
        if self.aborted and event.finish_reason is FinishReason.CANCELLED:
            event.finish_reason = FinishReason.ERROR
            event.error = self.aborted
        return event

    def raise_if_aborted(self) -> None:
        """503 with Retry-After for a non-streaming request the server ended early."""
        if self.aborted:
            raise ServiceUnavailableError(self.aborted, retry_after=1.0)

    async def protect_messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Masked copies of chat messages (the PII stage); unchanged when it is off."""
        if self.pii is None:
            return messages
        protected = await self.pii.protect_messages(
            messages,
            policy=self.principal.pii_policy,
            conversation_id=self.conversation_id,
            force=self.force_pii,
        )
        self._found(protected)
        return protected.messages or messages

    async def protect_text(self, text: str) -> str:
        """A masked copy of one prompt or input text; unchanged when the stage is off."""
        if self.pii is None:
            return text
        protected = await self.pii.protect_text(
            text,
            policy=self.principal.pii_policy,
            conversation_id=self.conversation_id,
            force=self.force_pii,
        )
        self._found(protected)
        return protected.text if protected.text is not None else text

    def restorer(self) -> TextRestorer:
        """Turns the model's pseudonyms back into the caller's values, chunk by chunk."""
        if not self.protected:
            return _Identity()
        return self.protected[-1].restorer()

    def restore_tool_calls(self, tool_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not self.protected:
            return tool_calls
        return self.protected[-1].restore_tool_calls(tool_calls)

    def _found(self, protected: ProtectedInput) -> None:
        self.protected.append(protected)
        for entity, count in protected.findings.items():
            self.pii_findings[entity] = self.pii_findings.get(entity, 0) + count

    async def launch(
        self, engine: Engine, requests: list[GenerationRequest], *, prompt_tokens: int
    ) -> list[tuple[GenerationEvent, AsyncIterator[GenerationEvent]]]:
        """Admit against quotas, then start every choice on ``engine``."""
        await self.admit(prompt_tokens)
        self._engine, self._launched = engine, requests
        if self.force_pii and self.pii is not None:
            for req in requests:  # the router refuses unmasked prompts bound off-premises
                req.pii_protected = True
        try:
            primed = await prime_all(engine, requests)
        finally:
            for req in requests:  # backends the router gave up on before one served
                self.notes.extend(f"failover from {f}" for f in req.failovers)
        # The router records which backend served; the audit record names it.
        self.backend = requests[0].backend or engine.info.backend
        return primed

    async def finish(self) -> None:
        """Charge the real usage and write the allowed record (once)."""
        if self._closed:
            return
        await self.gateway.record_usage(self.principal, tokens=self.usage.total_tokens)
        await self._write(Decision.ALLOWED, "; ".join(self.notes) or None)

    async def _write(self, decision: Decision, reason: str | None) -> None:
        if self._closed:
            return
        self._closed = True
        if self.drain is not None:
            self.drain.leave(self)
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
