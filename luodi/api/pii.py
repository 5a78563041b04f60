"""``POST /v1/pii/analyze`` and ``POST /v1/pii/anonymize``: PII detection for other systems.

Both need the ``pii:use`` permission, and every call leaves one audit record, allowed or
denied, with the entity counts it found and never a value or a digest of the text (a
digest of a lone phone number is a dictionary lookup away from it). Conversation ids
are the caller's own: the stage scopes them to the caller's key.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.params import Depends
from pydantic import BaseModel, Field

from luodi.api.deps import StateDep
from luodi.api.gateway import PrincipalDep, client_ip
from luodi.config.privacy import OperatorName
from luodi.errors import InvalidRequestError, LuodiError
from luodi.privacy.stage import PIIStage
from luodi.security import AuditEvent, Decision, Gateway, Principal

__all__ = ["PII_PERMISSION", "AnalyzeRequest", "AnonymizeRequest", "build_pii_router"]

PII_PERMISSION = "pii:use"
"""Permission both routes need: granted by ``*`` (admin) and by the roles that list it."""

_MAX_TEXT = 1_000_000


class AnalyzeRequest(BaseModel):
    """Body of ``POST /v1/pii/analyze``."""

    text: str = Field(max_length=_MAX_TEXT)
    policy: str | None = None
    entities: list[str] | None = None
    return_text: bool = False
    """Echo each finding's matched text (off by default: responses may be logged)."""


class AnonymizeRequest(BaseModel):
    """Body of ``POST /v1/pii/anonymize``."""

    text: str = Field(max_length=_MAX_TEXT)
    policy: str | None = None
    operators: dict[str, OperatorName] | None = None
    conversation_id: str | None = Field(default=None, max_length=256)


def build_pii_router(
    stage: PIIStage | Callable[[], PIIStage],
    *,
    dependencies: Sequence[Depends] = (),
) -> APIRouter:
    """A router serving the PII API from ``stage``.

    Args:
        stage: the stage, or a callable returning the current one (for hot swaps).
        dependencies: route dependencies, e.g. the gateway's authentication. The
            routes authenticate (``PrincipalDep``), authorize ``pii:use`` and audit
            through the app's gateway themselves.

    Errors are raised as ``luodi.errors`` classes (403 ``pii_blocked``, 503
    ``pii_unavailable``, 400 for a bad request); the app's handler shapes them.
    """
    current: Callable[[], PIIStage] = (lambda: stage) if isinstance(stage, PIIStage) else stage
    router = APIRouter(prefix="/v1/pii", tags=["pii"], dependencies=list(dependencies))

    @contextlib.asynccontextmanager
    async def audited(
        gateway: Gateway, principal: Principal, request: Request, detail: dict[str, Any]
    ) -> AsyncIterator[AuditEvent]:
        """Authorize, then yield the call's record (the route fills in the counts); it is
        written once however the call ends, denied with the error's message on a refusal."""
        event = AuditEvent.for_request(
            principal, endpoint=request.url.path, source_ip=client_ip(request), detail=detail
        )
        started = time.monotonic()
        try:
            gateway.authorize(principal, PII_PERMISSION)
            yield event
        except LuodiError as exc:
            event.decision, event.reason = Decision.DENIED, exc.message
            raise
        except Exception as exc:  # a 500: the handler maps it, the record is owed here
            event.decision, event.reason = Decision.DENIED, f"internal error: {type(exc).__name__}"
            raise
        finally:
            event.latency_ms = (time.monotonic() - started) * 1000
            await gateway.audit(event)

    def checked(policy: str | None) -> PIIStage:
        """The stage, once a policy the client named is known (else 400, not 503)."""
        found = current()
        known = found.settings.policies
        if policy is not None and policy not in known:
            raise InvalidRequestError(
                f"unknown PII policy {policy!r}; configured: {', '.join(sorted(known))}",
                param="policy",
            )
        return found

    @router.post("/analyze")
    async def analyze(
        body: AnalyzeRequest, principal: PrincipalDep, state: StateDep, request: Request
    ) -> dict[str, Any]:
        detail = {"policy": body.policy, "chars": len(body.text)}
        async with audited(state.gateway, principal, request, detail) as event:
            found = await checked(body.policy).analyze(
                body.text, policy=body.policy, entities=body.entities
            )
            counts: dict[str, int] = {}
            for f in found:
                counts[f.entity_type] = counts.get(f.entity_type, 0) + 1
            event.pii_findings = counts
        return {
            "object": "pii.analysis",
            "findings": [f.to_dict(body.text if body.return_text else None) for f in found],
            "counts": counts,
        }

    @router.post("/anonymize")
    async def anonymize(
        body: AnonymizeRequest, principal: PrincipalDep, state: StateDep, request: Request
    ) -> dict[str, Any]:
        detail = {
            "policy": body.policy,
            "chars": len(body.text),
            "operators": sorted(set((body.operators or {}).values())),
        }
        async with audited(state.gateway, principal, request, detail) as event:
            done, counts = await checked(body.policy).anonymize(
                body.text,
                policy=body.policy,
                operators=body.operators,
                conversation_id=body.conversation_id,
                owner=principal,
            )
            event.pii_findings = counts
        return {
            "object": "pii.anonymized",
            "text": done.text,
            "items": [
                {
                    "entity_type": i.entity_type,
                    "operator": i.operator,
                    "start": i.start,
                    "end": i.end,
                    "text": i.new_text,
                }
                for i in done.items
            ],
            "counts": counts,
        }

    return router
