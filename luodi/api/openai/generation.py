"""From validated wire requests to engine generations, and back to choices."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from luodi.api.openai.schemas import _Sampling
from luodi.engine.base import Engine, TextEngine
from luodi.engine.types import (
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    SamplingParams,
    TokenLogprob,
    Usage,
)
from luodi.errors import ContextLengthError, EngineError, InvalidRequestError

__all__ = [
    "Collected",
    "add_usage",
    "collect",
    "collect_all",
    "merge_streams",
    "prime",
    "prime_all",
    "refuse_overlong",
    "sampling_params",
    "usage_body",
]


def sampling_params(
    body: _Sampling,
    *,
    max_tokens: int,
    logprobs: int | None,
    grammar: str | None = None,
    index: int = 0,
) -> SamplingParams:
    """SamplingParams for choice ``index`` of a request (seeds differ per choice)."""
    bias: dict[int, float] = {}
    for key, value in (body.logit_bias or {}).items():
        try:
            bias[int(key)] = value
        except ValueError:
            raise InvalidRequestError(
                f"logit_bias keys must be token ids, got {key!r}", param="logit_bias"
            ) from None
    seed = None if body.seed is None else body.seed + index
    return SamplingParams(
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        min_p=body.min_p,
        repetition_penalty=body.repetition_penalty,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        seed=seed,
        stop=body.stop_list,
        stop_token_ids=list(body.stop_token_ids or []),
        max_tokens=max_tokens,
        ignore_eos=body.ignore_eos,
        logit_bias=bias,
        logprobs=logprobs,
        grammar=grammar,
    )


def refuse_overlong(engine: Engine, texts: list[str], *, param: str) -> None:
    """A 400 naming both numbers for input that cannot fit, before PII detection scans it.

    Detection of a very long input can run past the PII stage's time budget, which
    would answer 503 for what is the client's error. Every token covers at least one
    byte, so input no longer in bytes than the context fits and is not tokenized here.
    """
    if not isinstance(engine, TextEngine):
        return  # an upstream counts its own tokens
    limit = engine.info.context_length
    if sum(len(text.encode()) for text in texts) <= limit:
        return
    n = sum(len(engine.tokenize(text, add_special=False)) for text in texts)
    if n > limit:
        raise ContextLengthError(
            f"this model's maximum context length is {limit} tokens, but the {param}"
            f" take {n} tokens; shorten them",
            param=param,
        )


@dataclass
class Collected:
    """One finished choice."""

    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage = field(default_factory=Usage)


async def prime(
    engine: Engine, request: GenerationRequest
) -> tuple[GenerationEvent, AsyncIterator[GenerationEvent]]:
    """Start a generation and wait for its first event, so early errors become HTTP errors."""
    stream = engine.generate(request)
    try:
        first = await anext(stream)  # type: ignore[call-overload]
    except BaseException:
        await stream.aclose()  # type: ignore[attr-defined]
        raise
    return first, stream


async def prime_all(
    engine: Engine, requests: list[GenerationRequest]
) -> list[tuple[GenerationEvent, AsyncIterator[GenerationEvent]]]:
    """Prime every choice of a request at once; if one fails, close those that started.

    At once, not one after another: a non-streaming choice on a routed model is held
    until it ends (so it can be replayed elsewhere), and choices must not queue
    behind each other for that.
    """
    if len(requests) == 1:
        return [await prime(engine, requests[0])]
    tasks = [asyncio.ensure_future(prime(engine, req)) for req in requests]
    try:
        await asyncio.wait(tasks)
    except BaseException:  # cancelled: the client went away while choices started
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _close_started(tasks)
        raise
    failure = next((t.exception() for t in tasks if t.exception() is not None), None)
    if failure is not None:
        await _close_started(tasks)
        raise failure
    return [task.result() for task in tasks]


async def _close_started(
    tasks: list[asyncio.Future[tuple[GenerationEvent, AsyncIterator[GenerationEvent]]]],
) -> None:
    for task in tasks:
        if not task.cancelled() and task.exception() is None:
            await task.result()[1].aclose()  # type: ignore[attr-defined]


def add_usage(total: Usage, usage: Usage, *, new_prompt: bool) -> None:
    """Sum usage over choices: a prompt's tokens count once however many choices share it."""
    if new_prompt:
        total.prompt_tokens += usage.prompt_tokens
        total.cached_tokens += usage.cached_tokens
    total.completion_tokens += usage.completion_tokens


def usage_body(usage: Usage) -> dict[str, Any]:
    """OpenAI's ``usage`` object."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


async def _rest(
    first: GenerationEvent, stream: AsyncIterator[GenerationEvent]
) -> AsyncIterator[GenerationEvent]:
    yield first
    if first.finished:
        return
    async for event in stream:
        yield event


async def collect(first: GenerationEvent, stream: AsyncIterator[GenerationEvent]) -> Collected:
    """Run one primed generation to the end."""
    out = Collected()
    async for event in _rest(first, stream):
        out.text += event.text
        out.token_ids.extend(event.token_ids)
        out.logprobs.extend(event.logprobs)
        if event.finished:
            if event.finish_reason is FinishReason.ERROR:
                raise EngineError(event.error or "generation failed")
            out.finish_reason = event.finish_reason
            out.usage = event.usage or Usage()
    return out


async def collect_all(
    primed: list[tuple[GenerationEvent, AsyncIterator[GenerationEvent]]],
) -> list[Collected]:
    """Run every primed choice to its end; a failure or a cancellation aborts them all."""
    try:
        return [await collect(first, stream) for first, stream in primed]
    except BaseException:
        for _, stream in primed:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
        raise


async def merge_streams(
    primed: list[tuple[GenerationEvent, AsyncIterator[GenerationEvent]]],
) -> AsyncIterator[tuple[int, GenerationEvent]]:
    """Interleave several primed generations as ``(choice index, event)``.

    Leaving early cancels every generation still running.
    """
    if len(primed) == 1:
        async for event in _rest(*primed[0]):
            yield 0, event
        return
    queue: asyncio.Queue[tuple[int, GenerationEvent | BaseException | None]] = asyncio.Queue()

    async def pump(
        index: int, first: GenerationEvent, stream: AsyncIterator[GenerationEvent]
    ) -> None:
        try:
            async for event in _rest(first, stream):
                await queue.put((index, event))
        except Exception as exc:
            await queue.put((index, exc))
        finally:
            await queue.put((index, None))

    tasks = [asyncio.create_task(pump(i, f, s)) for i, (f, s) in enumerate(primed)]
    try:
        remaining = len(tasks)
        while remaining:
            index, item = await queue.get()
            if item is None:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
