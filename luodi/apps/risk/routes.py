"""``/v1/apps/risk/{model}``: score, train and describe risk models, behind the gateway.

The RequestGate has authenticated the key before the body is read; each route then
checks its own permission (``risk:<model>:score`` to score and describe,
``risk:<model>:train`` to train) and the key's rate limit, audits a refusal, and runs
the learners with tools that reach the chat and embedding models only through the
gateway pipeline.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from luodi.api.deps import PipelineDep, StateDep
from luodi.api.gateway import PrincipalDep, audit_denial
from luodi.api.pipeline import client_ip
from luodi.api.state import AppState
from luodi.apps.risk.case import parse_cases, parse_labelled
from luodi.apps.risk.gateway import PipelineChat, PipelineEmbeddings
from luodi.apps.risk.learners import LEARNERS, Tools
from luodi.apps.risk.service import Caller, RiskService
from luodi.errors import InvalidRequestError, LuodiError
from luodi.security import Principal

__all__ = ["build_risk_router"]


async def _body(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"the body is not valid JSON: {exc}") from None


async def _allow(state: AppState, principal: Principal, request: Request, permission: str) -> None:
    """Authorize, then count the request against the key's rate limits (no tokens: the
    LLM calls a learner makes pass the pipeline's own Limit stage)."""
    try:
        state.gateway.authorize(principal, permission)
        # Not settled: Limiter.settle moves every window a reservation holds, the
        # request counter too, so settling 0 tokens would hand the request back.
        await state.gateway.admit(principal, tokens=0)
    except LuodiError as exc:
        await audit_denial(state.gateway, principal, request, exc)
        raise


def _tools(
    state: AppState,
    pipeline: PipelineDep,
    principal: Principal,
    request: Request,
    learner: Any = None,
) -> Tools:
    """Chat and embedding models as the learner was trained with them, else the configured."""
    settings = state.settings.risk
    chat_name = getattr(learner, "chat_model", None) or settings.llm_model
    chat_name = chat_name or next(iter(state.engines), None)
    embed_name = getattr(learner, "embedding_model", None) or settings.embedding_model
    embed_name = embed_name or next(iter(state.embedders), None)
    return Tools(
        chat=PipelineChat(pipeline, principal, request, chat_name) if chat_name else None,
        embeddings=PipelineEmbeddings(pipeline, principal, request, embed_name)
        if embed_name
        else None,
    )


def _learners(body: dict[str, Any], default: str) -> list[str]:
    raw = body.get("learners", body.get("learner", default))
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
        raise InvalidRequestError(
            f"learners must be a name or a list of names among {', '.join(LEARNERS)}",
            param="learners",
        )
    return names


def build_risk_router(state: AppState) -> APIRouter:
    """The risk routes over one ``RiskService`` whose decisions go to the gateway's audit."""
    service = RiskService(state.settings.risk, audit=lambda event: state.gateway.audit(event))
    router = APIRouter()

    def caller(principal: Principal, request: Request) -> Caller:
        return Caller(principal, request.url.path, client_ip(request))

    @router.post("/v1/apps/risk/{model}/score")
    async def score(
        model: str,
        request: Request,
        state: StateDep,
        pipeline: PipelineDep,
        principal: PrincipalDep,
        learner: str | None = None,
    ) -> JSONResponse:
        """Score one case (the body is the case) or a batch (``{"cases": [...]}``)."""
        service.store.check_name(model)
        await _allow(state, principal, request, f"risk:{model}:score")
        body = await _body(request)
        if not isinstance(body, dict):
            raise InvalidRequestError("the body must be a case or {'cases': [...]}")
        batch = "cases" in body
        if batch:
            learner = body.get("learner", learner)
            if not isinstance(body["cases"], list) or not body["cases"]:
                raise InvalidRequestError("cases must be a non-empty list", param="cases")
            cases = parse_cases(body["cases"])
        else:
            cases = parse_cases([body], prefix="case")
        chosen, _ = service.learner(model, learner)
        tools = _tools(state, pipeline, principal, request, chosen)
        answers = await service.score(
            model, cases, tools, learner=chosen.name, caller=caller(principal, request)
        )
        if not batch:
            return JSONResponse(answers[0].model_dump())
        return JSONResponse(
            {
                "object": "list",
                "model": model,
                "learner": chosen.name,
                "data": [a.model_dump() for a in answers],
            }
        )

    @router.post("/v1/apps/risk/{model}/train")
    async def train(
        model: str,
        request: Request,
        state: StateDep,
        pipeline: PipelineDep,
        principal: PrincipalDep,
    ) -> JSONResponse:
        """Train learners on labelled cases (added to the model's set, or replacing it)."""
        service.store.check_name(model)
        await _allow(state, principal, request, f"risk:{model}:train")
        body = await _body(request)
        if not isinstance(body, dict) or not isinstance(body.get("cases"), list):
            raise InvalidRequestError("the body must be {'cases': [labelled cases]}", param="cases")
        if len(body["cases"]) > service.settings.max_batch:
            raise InvalidRequestError(
                f"at most {service.settings.max_batch} cases per request", param="cases"
            )
        cases = parse_labelled(body["cases"])
        learners = _learners(body, service.settings.default_learner)
        replace = body.get("replace", False)
        if not isinstance(replace, bool):
            raise InvalidRequestError("replace must be true or false", param="replace")
        report = await service.train(
            model,
            cases,
            learners,
            _tools(state, pipeline, principal, request),
            replace=replace,
            caller=caller(principal, request),
        )
        return JSONResponse(report)

    @router.get("/v1/apps/risk/{model}")
    async def describe(
        model: str, request: Request, state: StateDep, principal: PrincipalDep
    ) -> JSONResponse:
        """The model's learners, their metrics and its label counts."""
        service.store.check_name(model)
        await _allow(state, principal, request, f"risk:{model}:score")
        return JSONResponse(service.describe(model))

    return router
