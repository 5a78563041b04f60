"""vLLM's tokenizer routes: POST /tokenize, POST /detokenize, GET /tokenizer_info.

Clients count tokens before they send (LangChain, LlamaIndex, guardrails), and
lm-eval's ``local-completions`` with ``tokenizer_backend=remote`` builds its
log-likelihood requests from them: with these, lm-eval scores a luodi server with
nothing downloaded. Each is a model request like any other: authenticated,
authorized for the model (``model:<name>:invoke``), counted by quotas and audited,
through the gateway pipeline; only a model whose tokenizer is in this process answers.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from luodi.api.deps import PipelineDep
from luodi.api.gateway import PrincipalDep
from luodi.api.openai.protocol import DetokenizeResponse, TokenizeResponse
from luodi.api.openai.schemas import DetokenizeRequest, TokenizeRequest
from luodi.api.pipeline import Exchange, TokenizeWork
from luodi.api.pipeline.pipeline import Pipeline
from luodi.chat import ChatTemplate
from luodi.engine.base import TemplatedEngine, TextEngine
from luodi.errors import InvalidRequestError

__all__ = ["router"]

router = APIRouter()


def _model(request: Request, named: str | None) -> str:
    """The named model, or the server's only one (vLLM's routes take none)."""
    if named:
        return named
    served: list[str] = sorted(request.app.state.luodi.engines)
    if len(served) != 1:
        raise InvalidRequestError(
            f"this server serves {len(served)} models ({', '.join(served) or 'none'}):"
            " name one in 'model'",
            param="model",
        )
    return served[0]


async def _run(
    pipeline: Pipeline, exchange: Exchange, check: Callable[[], None] | None = None
) -> Exchange:
    async with pipeline.guarding(exchange):
        if check is not None:
            check()
        await pipeline.run(exchange)
    await pipeline.finish(exchange)
    return exchange


@router.post("/tokenize")
async def tokenize(
    body: TokenizeRequest, pipeline: PipelineDep, principal: PrincipalDep, request: Request
) -> JSONResponse:
    """Token ids of a prompt, or of chat messages as the model's template renders them."""
    work = TokenizeWork(
        text=body.prompt,
        add_special_tokens=True if body.add_special_tokens is None else body.add_special_tokens,
    )
    exchange = pipeline.open(principal, request, _model(request, body.model), work)

    def check() -> None:
        if (body.prompt is None) == (body.messages is None):
            raise InvalidRequestError("give exactly one of 'prompt' and 'messages'", param="prompt")
        if body.messages is not None:
            if not body.add_generation_prompt:
                raise InvalidRequestError(
                    "add_generation_prompt false is not supported", param="add_generation_prompt"
                )
            work.messages = [m.model_dump(exclude_none=True) for m in body.messages]
            options = {"tools": body.tools, "chat_template_kwargs": body.chat_template_kwargs}
            work.options = {k: v for k, v in options.items() if v is not None}

    await _run(pipeline, exchange, check)
    engine = exchange.engine
    assert engine is not None
    strs = None
    if body.return_token_strs and isinstance(engine, TextEngine):
        strs = [engine.detokenize([t]) for t in work.tokens]
    answer = TokenizeResponse(
        count=len(work.tokens),
        max_model_len=engine.info.context_length,
        tokens=work.tokens,
        token_strs=strs,
    )
    return JSONResponse(answer.wire())


@router.post("/detokenize")
async def detokenize(
    body: DetokenizeRequest, pipeline: PipelineDep, principal: PrincipalDep, request: Request
) -> JSONResponse:
    """The text of token ids."""
    work = TokenizeWork(ids=list(body.tokens))
    exchange = pipeline.open(principal, request, _model(request, body.model), work)
    await _run(pipeline, exchange)
    return JSONResponse(DetokenizeResponse(prompt=work.detokenized).wire())


@router.get("/tokenizer_info")
async def tokenizer_info(
    pipeline: PipelineDep, principal: PrincipalDep, request: Request, model: str | None = None
) -> JSONResponse:
    """The special tokens and chat template of a model (vLLM's tokenizer_info subset)."""
    work = TokenizeWork(text="")
    exchange = pipeline.open(principal, request, _model(request, model), work)
    await _run(pipeline, exchange)
    engine = exchange.engine
    if not isinstance(engine, TemplatedEngine):
        raise InvalidRequestError(
            f"{exchange.model}'s tokenizer is not in this process", param="model"
        )
    meta = engine.template_metadata
    template = ChatTemplate.for_model(meta)
    special = dict(meta.special_tokens)
    return JSONResponse(
        {
            "tokenizer_class": "llama.cpp",
            "model": exchange.model,
            "model_max_length": engine.info.context_length,
            "bos_token": special.get("bos") or meta.bos_token or None,
            "eos_token": special.get("eos") or meta.eos_token or None,
            "pad_token": None,
            "chat_template": template.source,
        }
    )
