"""POST /v1/completions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from luodi.api.deps import StateDep
from luodi.api.disconnect import cancel_on_disconnect
from luodi.api.gateway import PrincipalDep, Trail
from luodi.api.openai.generation import (
    add_usage,
    collect_all,
    merge_streams,
    refuse_overlong,
    sampling_params,
    usage_body,
)
from luodi.api.openai.schemas import CompletionRequest, make_id, now
from luodi.api.openai.streaming import sse_response
from luodi.engine.base import Engine, TextEngine
from luodi.engine.types import GenerationRequest, TokenLogprob, Usage
from luodi.errors import EngineError, InvalidRequestError

__all__ = ["router"]

router = APIRouter()


def _prompts(body: CompletionRequest) -> list[str | list[int]]:
    p = body.prompt
    if isinstance(p, str):
        return [p]
    if not p:
        raise InvalidRequestError("prompt must not be empty", param="prompt")
    if all(isinstance(x, int) for x in p):
        return [list(p)]  # type: ignore[arg-type]
    if all(isinstance(x, str) for x in p):
        return list(p)  # type: ignore[arg-type]
    if all(isinstance(x, list) for x in p):
        return [list(x) for x in p]  # type: ignore[union-attr]
    raise InvalidRequestError(
        "prompt must be a string, a list of strings or token ids", param="prompt"
    )


def _check_unsupported(body: CompletionRequest) -> None:
    if body.best_of is not None and body.best_of != body.n:
        raise InvalidRequestError(
            "best_of is not supported; use n to get several completions", param="best_of"
        )
    if body.suffix is not None:
        raise InvalidRequestError("suffix (insertion) is not supported", param="suffix")


def _request_for(
    engine: Engine, prompt: str | list[int], body: CompletionRequest, index: int, trail: Trail
) -> GenerationRequest:
    params = sampling_params(
        body, max_tokens=body.max_tokens or 16, logprobs=body.logprobs, index=index
    )
    if isinstance(engine, TextEngine):
        tokens = engine.tokenize(prompt) if isinstance(prompt, str) else prompt
        return GenerationRequest(tokens, params, model=body.model, priority=trail.priority)
    if not isinstance(prompt, str):
        raise InvalidRequestError("this model takes text prompts, not token ids", param="prompt")
    return GenerationRequest(
        prompt=prompt,
        params=params,
        model=body.model,
        priority=trail.priority,
        replayable=not body.stream,
    )


async def _protected_prompts(
    trail: Trail, engine: Engine, prompts: list[str | list[int]]
) -> list[str | list[int]]:
    """Prompts as the model may see them; token-id prompts carrying PII are refused."""
    out: list[str | list[int]] = []
    for prompt in prompts:
        if isinstance(prompt, str):
            out.append(await trail.protect_text(prompt))
            continue
        text = _detok(engine, prompt)
        if text and await trail.protect_text(text) != text:
            raise InvalidRequestError(
                "this token-id prompt holds personal data that cannot be masked in token form;"
                " send it as text",
                param="prompt",
            )
        out.append(prompt)
    return out


def _logprobs_body(entries: list[TokenLogprob], offset: int) -> dict[str, Any]:
    tokens, token_logprobs, top, offsets = [], [], [], []
    for entry in entries:
        tokens.append(entry.token)
        token_logprobs.append(entry.logprob)
        top.append({t: lp for t, lp in entry.top})
        offsets.append(offset)
        offset += len(entry.token)
    return {
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top,
        "text_offset": offsets,
    }


@router.post("/v1/completions", response_model=None)
@cancel_on_disconnect
async def create_completion(
    body: CompletionRequest, state: StateDep, principal: PrincipalDep, request: Request
) -> Response:
    """OpenAI text completions, streamed or not, with n choices per prompt."""
    trail = Trail.open(state, principal, request, body.model)
    async with trail.guarding():
        _check_unsupported(body)
        engine = state.engine_for(body.model)
        trail.authorize()
        originals = _prompts(body)
        for prompt in originals:  # each prompt is its own sequence
            if isinstance(prompt, str):
                refuse_overlong(engine, [prompt], param="prompt")
        prompts = await _protected_prompts(trail, engine, originals)
        trail.prompt = "\n".join(p if isinstance(p, str) else _detok(engine, p) for p in prompts)
        # echo gives the caller back their own prompt, not the masked one the model saw.
        texts = [p if isinstance(p, str) else _detok(engine, p) for p in originals]
        gen_requests = [
            _request_for(engine, prompt, body, j, trail)
            for prompt in prompts
            for j in range(body.n)
        ]
        primed = await trail.launch(
            engine,
            gen_requests,
            prompt_tokens=sum(len(r.prompt_tokens) for r in gen_requests[:: body.n]),
        )
    echo_texts = [text if body.echo else "" for text in texts for _ in range(body.n)]
    completion_id, created = make_id("cmpl"), now()
    if body.stream:
        return sse_response(
            _stream(body, primed, echo_texts, completion_id, created, trail), on_close=trail.finish
        )
    choices, usage = [], Usage()
    async with trail.guarding():
        results = await collect_all(primed)
        trail.raise_if_aborted()
    for index, result in enumerate(results):
        trail.response.append(result.text)
        restorer = trail.restorer()
        choice: dict[str, Any] = {
            "index": index,
            "text": echo_texts[index] + restorer.feed(result.text) + restorer.flush(),
            "logprobs": _logprobs_body(result.logprobs, len(echo_texts[index]))
            if body.logprobs is not None
            else None,
            "finish_reason": result.finish_reason.value if result.finish_reason else None,
        }
        choices.append(choice)
        add_usage(usage, result.usage, new_prompt=index % body.n == 0)
    trail.usage = usage
    await trail.finish()
    return JSONResponse(
        {
            "id": completion_id,
            "object": "text_completion",
            "created": created,
            "model": body.model,
            "choices": choices,
            "usage": usage_body(usage),
        }
    )


def _detok(engine: Engine, tokens: list[int]) -> str:
    return engine.detokenize(tokens) if isinstance(engine, TextEngine) else ""


async def _stream(
    body: CompletionRequest,
    primed: list[Any],
    echo_texts: list[str],
    completion_id: str,
    created: int,
    trail: Trail,
) -> AsyncIterator[dict[str, Any]]:
    usage = trail.usage
    offsets = [len(t) for t in echo_texts]
    restorers = [trail.restorer() for _ in echo_texts]

    def chunk(
        choices: list[dict[str, Any]], usage_obj: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "text_completion",
            "created": created,
            "model": body.model,
            "choices": choices,
            **({"usage": usage_obj} if usage_obj is not None else {}),
        }

    if body.echo:
        yield chunk(
            [
                {"index": i, "text": t, "logprobs": None, "finish_reason": None}
                for i, t in enumerate(echo_texts)
            ]
        )
    async for index, raw in merge_streams(primed):
        event = trail.checked(raw)
        trail.response.append(event.text)
        text = restorers[index].feed(event.text)
        if event.finished:
            text += restorers[index].flush()
        if text or event.finished:
            lp = (
                _logprobs_body(event.logprobs, offsets[index])
                if body.logprobs is not None
                else None
            )
            offsets[index] += len(text)
            yield chunk(
                [
                    {
                        "index": index,
                        "text": text,
                        "logprobs": lp,
                        "finish_reason": event.finish_reason.value if event.finish_reason else None,
                    }
                ]
            )
        if event.finished and event.usage is not None:
            add_usage(usage, event.usage, new_prompt=index % body.n == 0)
        if event.error:
            # The choice's last chunk said finish_reason "error"; now say why.
            trail.notes.append(event.error)
            raise EngineError(event.error)
    if body.stream_options and body.stream_options.include_usage:
        yield chunk([], usage_body(usage))
