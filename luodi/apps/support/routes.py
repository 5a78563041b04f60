"""HTTP routes of the assistants: intent classification, and the admin's reload and sessions.

Classification is a model invocation like any other: the caller needs
``model:support/<name>:invoke`` and every call (or refusal) is one audit record. The
admin routes need ``support:manage`` and are audited as admin actions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from luodi.api.deps import StateDep
from luodi.api.gateway import PrincipalDep, audit_denial
from luodi.api.pipeline import client_ip
from luodi.apps.support.loading import AssistantFileError
from luodi.apps.support.service import SupportService
from luodi.errors import InvalidRequestError, LuodiError, NotFoundError
from luodi.security import AuditEvent

__all__ = ["build_support_router"]

_MANAGE = "support:manage"


class ClassifyRequest(BaseModel):
    """``POST /v1/apps/support/{assistant}/classify``."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)
    llm: bool = True
    """Let the model decide when the nearest examples are not confident."""


def build_support_router(support: Callable[[], SupportService]) -> APIRouter:
    """The assistants' routes, over the service ``install_support`` built."""
    router = APIRouter(tags=["support"])

    @router.post("/v1/apps/support/{assistant}/classify")
    async def classify(
        assistant: str,
        body: ClassifyRequest,
        request: Request,
        state: StateDep,
        principal: PrincipalDep,
    ) -> dict[str, Any]:
        """The intent of ``text``: intent, confidence, alternatives, path (knn or llm)."""
        started = time.monotonic()
        model = f"support/{assistant}"
        try:
            state.gateway.authorize(principal, f"model:{model}:invoke")
            found = support().assistant(assistant)
            support().warm_soon(found)
            result = await support().recognizer.classify(found, body.text, use_llm=body.llm)
        except LuodiError as exc:
            await audit_denial(state.gateway, principal, request, exc)
            raise
        answer = result.wire()
        await state.gateway.audit(
            AuditEvent.for_request(
                principal,
                endpoint=request.url.path,
                prompt=body.text,
                response=json.dumps(answer, ensure_ascii=False),
                reason=f"intent={result.intent} confidence={result.confidence:.3f} "
                f"path={result.path}",
                source_ip=client_ip(request),
                model=model,
                latency_ms=(time.monotonic() - started) * 1000,
            )
        )
        return answer

    @router.get("/v1/apps/support")
    async def list_assistants(state: StateDep, principal: PrincipalDep) -> dict[str, Any]:
        """The assistants this key may talk to, with their intents."""
        service = support()
        service.sync_models()
        data = []
        for found in service.catalog.assistants.values():
            try:
                state.gateway.authorize(principal, f"model:{found.model_name}:invoke")
            except LuodiError:
                continue
            data.append(
                {
                    "name": found.name,
                    "model": found.model_name,
                    "knowledge_bases": found.knowledge_bases,
                    "intents": [
                        {"name": i.name, "description": i.description, "action": i.action.type}
                        for i in found.intents
                    ],
                }
            )
        return {"object": "list", "data": data}

    @router.post("/admin/support/reload")
    async def reload(request: Request, state: StateDep, actor: PrincipalDep) -> dict[str, Any]:
        """Reload every assistant file now; a bad file is a 400 naming its line."""

        def run() -> dict[str, Any]:
            try:
                names = support().reload()
            except AssistantFileError as exc:
                raise InvalidRequestError(exc.message, param="assistants_dir") from exc
            return {"assistants": names}

        done: dict[str, Any] = await state.gateway.admin_action(
            actor,
            action="support.reload",
            permission=_MANAGE,
            detail={},
            run=run,
            source_ip=client_ip(request),
        )
        for name in done["assistants"]:  # indexes and prompt prefixes now, not on a turn
            await support().warm(support().catalog.assistants[name])
        return done

    @router.get("/admin/support/sessions")
    async def sessions(
        request: Request,
        state: StateDep,
        actor: PrincipalDep,
        assistant: str | None = None,
        handoff: bool | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        """Live sessions, most recent first (``handoff=true``: those waiting for a human)."""
        found = await state.gateway.admin_action(
            actor,
            action="support.sessions.list",
            permission=_MANAGE,
            detail={"assistant": assistant, "handoff": handoff},
            run=lambda: support().sessions.list(
                assistant=assistant, handoff=handoff, limit=max(1, min(limit, 1000))
            ),
            source_ip=client_ip(request),
        )
        return {"object": "list", "data": [s.wire() for s in found]}

    def _session_action(action: str, verb: Callable[[SupportService, str, str], Any]) -> Any:
        async def act(
            assistant: str,
            conversation: str,
            request: Request,
            state: StateDep,
            actor: PrincipalDep,
        ) -> dict[str, Any]:
            def run() -> Any:
                done = verb(support(), assistant, conversation)
                if not done:
                    raise NotFoundError(
                        f"no session {conversation!r} of assistant {assistant!r}",
                        param="conversation",
                    )
                return done

            done = await state.gateway.admin_action(
                actor,
                action=f"support.sessions.{action}",
                permission=_MANAGE,
                detail={"assistant": assistant, "conversation": conversation},
                run=run,
                source_ip=client_ip(request),
            )
            if done is True:
                return {"assistant": assistant, "conversation": conversation, action: True}
            wired: dict[str, Any] = done.wire()
            return wired

        return act

    path = "/admin/support/sessions/{assistant}/{conversation:path}"
    router.add_api_route(
        path, _session_action("read", lambda s, a, c: s.sessions.get(a, c)), methods=["GET"]
    )
    router.add_api_route(
        path, _session_action("erased", lambda s, a, c: s.sessions.erase(a, c)), methods=["DELETE"]
    )
    router.add_api_route(
        f"{path}/release",
        _session_action("released", lambda s, a, c: s.sessions.release(a, c)),
        methods=["POST"],
    )
    return router
