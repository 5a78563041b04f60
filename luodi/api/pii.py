"""``POST /v1/pii/analyze`` and ``POST /v1/pii/anonymize``: PII detection for other systems."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter
from fastapi.params import Depends
from pydantic import BaseModel, Field

from luodi.config.privacy import OperatorName
from luodi.errors import InvalidRequestError
from luodi.privacy.stage import PIIStage

__all__ = ["AnalyzeRequest", "AnonymizeRequest", "build_pii_router"]

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
        dependencies: route dependencies, e.g. the gateway's authentication.

    Errors are raised as ``luodi.errors`` classes (403 ``pii_blocked``, 503
    ``pii_unavailable``, 400 for a bad request); the app's handler shapes them.
    """
    current: Callable[[], PIIStage] = (lambda: stage) if isinstance(stage, PIIStage) else stage
    router = APIRouter(prefix="/v1/pii", tags=["pii"], dependencies=list(dependencies))

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
    async def analyze(body: AnalyzeRequest) -> dict[str, Any]:
        found = await checked(body.policy).analyze(
            body.text, policy=body.policy, entities=body.entities
        )
        counts: dict[str, int] = {}
        for f in found:
            counts[f.entity_type] = counts.get(f.entity_type, 0) + 1
        return {
            "object": "pii.analysis",
            "findings": [f.to_dict(body.text if body.return_text else None) for f in found],
            "counts": counts,
        }

    @router.post("/anonymize")
    async def anonymize(body: AnonymizeRequest) -> dict[str, Any]:
        done, counts = await checked(body.policy).anonymize(
            body.text,
            policy=body.policy,
            operators=body.operators,
            conversation_id=body.conversation_id,
        )
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
