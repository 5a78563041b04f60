"""POST /v1/completions: parse, run the gateway pipeline, shape the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from luodi.api.deps import PipelineDep
from luodi.api.disconnect import cancel_on_disconnect
from luodi.api.gateway import PrincipalDep
from luodi.api.openai.generation import (
    Collected,
    add_usage,
    collect_all,
    merge_streams,
    sampling_params,
)
from luodi.api.openai.protocol import (
    CompletionChoice,
    CompletionLogprobs,
    CompletionResponse,
    CompletionStreamResponse,
    UsageInfo,
)
from luodi.api.openai.schemas import CompletionRequest, make_id, now
from luodi.api.openai.streaming import sse_response
from luodi.api.pipeline import AnswerRestorer, CompletionWork, Exchange
from luodi.api.pipeline.route import detokenized
from luodi.engine.types import TokenLogprob, Usage
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
    if body.max_tokens == 0 and not body.echo:
        raise InvalidRequestError(
            "max_tokens 0 generates nothing: it is only for scoring a prompt with echo",
            param="max_tokens",
        )


@router.post("/v1/completions", response_model=None)
@cancel_on_disconnect
async def create_completion(
    body: CompletionRequest, pipeline: PipelineDep, principal: PrincipalDep, request: Request
) -> Response:
    """OpenAI text completions, streamed or not, with n choices per prompt."""
    # OpenAI's completions API defaults to 16, for an explicit null too: a wire default,
    # so the engine's policy (luodi.engine.planning) never sees an open limit here.
    limit = 16 if body.max_tokens is None else body.max_tokens
    params = sampling_params(body, max_tokens=limit, logprobs=body.logprobs)
    if body.echo and (body.logprobs is not None or limit == 0):
        # Scores of the echoed prompt's tokens, as lm-eval's loglikelihood requests read.
        params.prompt_logprobs = body.logprobs or 0
    work = CompletionWork(prompts=[], params=params, n=body.n, stream=body.stream)
    exchange = pipeline.open(principal, request, body.model, work)
    async with pipeline.guarding(exchange):
        _check_unsupported(body)
        originals = _prompts(body)
        work.prompts = list(originals)
        await pipeline.run(exchange)
    # echo gives the caller back their own prompt, not the masked one the model saw.
    engine = exchange.engine
    assert engine is not None
    texts = [p if isinstance(p, str) else detokenized(engine, p) for p in originals]
    echo = [text if body.echo else "" for text in texts for _ in range(body.n)]
    answer = _Answer(body, exchange, pipeline.answer(exchange), echo)
    if body.stream:
        return sse_response(answer.stream(), on_close=lambda: pipeline.finish(exchange))
    async with pipeline.guarding(exchange):
        results = await collect_all(exchange.primed)
        exchange.raise_if_aborted()
    response = answer.whole(results)
    await pipeline.finish(exchange)
    return JSONResponse(response.wire())


class _Answer:
    """Shapes one completion request's answer, whole or streamed."""

    def __init__(
        self,
        body: CompletionRequest,
        exchange: Exchange,
        restorer: AnswerRestorer,
        echo: list[str],
    ) -> None:
        self.body = body
        self.exchange = exchange
        self.restorer = restorer
        self.echo = echo
        self.id, self.created = make_id("cmpl"), now()

    def whole(self, results: list[Collected]) -> CompletionResponse:
        body, choices, usage = self.body, [], Usage()
        for index, result in enumerate(results):
            self.exchange.response.append(result.text)
            choices.append(
                CompletionChoice(
                    index=index,
                    text=self.echo[index] + self.restorer.text(result.text),
                    logprobs=CompletionLogprobs.of(
                        result.logprobs,
                        len(self.echo[index]),
                        *self._prompt_part(index, result.prompt_logprobs),
                    )
                    if body.logprobs is not None
                    else None,
                    finish_reason=result.finish_reason.value if result.finish_reason else None,
                )
            )
            add_usage(usage, result.usage, new_prompt=index % body.n == 0)
        self.exchange.usage = usage
        return CompletionResponse(
            id=self.id,
            created=self.created,
            model=body.model,
            choices=choices,
            usage=UsageInfo.of(usage),
        )

    def _prompt_part(
        self, index: int, scored: list[TokenLogprob | None] | None
    ) -> tuple[list[TokenLogprob | None] | None, list[str] | None]:
        """The echoed prompt's scores and token texts, when it was echoed and scored."""
        if not self.body.echo or scored is None:
            return None, None
        engine = self.exchange.engine
        assert engine is not None
        tokens = self.exchange.requests[index].prompt_tokens
        first = detokenized(engine, tokens[:1])
        return scored, [first] + [s.token if s else "" for s in scored[1:]]

    def _chunk(
        self, choices: list[CompletionChoice], usage: UsageInfo | None = None
    ) -> dict[str, Any]:
        return CompletionStreamResponse(
            id=self.id, created=self.created, model=self.body.model, choices=choices, usage=usage
        ).wire()

    async def stream(self) -> AsyncIterator[dict[str, Any]]:
        body, exchange = self.body, self.exchange
        usage = exchange.usage
        offsets = [len(t) for t in self.echo]
        scored = body.echo and body.logprobs is not None
        if body.echo and not scored:
            yield self._chunk([CompletionChoice(index=i, text=t) for i, t in enumerate(self.echo)])
        async for index, raw in merge_streams(exchange.primed):
            event = exchange.checked(raw)
            if scored and event.prompt_logprobs is not None:
                # Each choice's echo leads its stream, carrying the prompt's scores.
                part = self._prompt_part(index, event.prompt_logprobs)
                lp = CompletionLogprobs.of([], 0, *part)
                yield self._chunk(
                    [CompletionChoice(index=index, text=self.echo[index], logprobs=lp)]
                )
            exchange.response.append(event.text)
            text = self.restorer.feed(index, "text", event.text)
            if event.finished:
                text += "".join(tail["text"] for tail in self.restorer.flush(index))
            if text or event.finished:
                lp = (
                    CompletionLogprobs.of(event.logprobs, offsets[index])
                    if body.logprobs is not None
                    else None
                )
                offsets[index] += len(text)
                reason = event.finish_reason.value if event.finish_reason else None
                choice = CompletionChoice(index=index, text=text, logprobs=lp, finish_reason=reason)
                yield self._chunk([choice])
            if event.finished and event.usage is not None:
                add_usage(usage, event.usage, new_prompt=index % body.n == 0)
            if event.error:
                # The choice's last chunk said finish_reason "error"; now say why.
                exchange.notes.append(event.error)
                raise EngineError(event.error)
        if body.stream_options and body.stream_options.include_usage:
            yield self._chunk([], UsageInfo.of(usage))
