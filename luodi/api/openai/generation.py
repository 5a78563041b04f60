"""From validated wire requests to sampling parameters, and engine events back to choices."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from luodi.api.openai.schemas import _Sampling
from luodi.engine.types import (
    FinishReason,
    GenerationEvent,
    SamplingParams,
    TokenLogprob,
    Usage,
)
from luodi.errors import EngineError, InvalidRequestError

__all__ = [
    "Collected",
    "add_usage",
    "collect",
    "collect_all",
    "merge_streams",
    "sampling_params",
]


def sampling_params(
    body: _Sampling, *, max_tokens: int | None, logprobs: int | None
) -> SamplingParams:
    """The request's SamplingParams; ``max_tokens`` None leaves the limit to the engine.

    Choices get their own seeds (``SamplingParams.for_choice``) when the engine plans
    the request.
    """
    bias: dict[int, float] = {}
    for key, value in (body.logit_bias or {}).items():
        try:
            bias[int(key)] = value
        except ValueError:
            raise InvalidRequestError(
                f"logit_bias keys must be token ids, got {key!r}", param="logit_bias"
            ) from None
    return SamplingParams(
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        min_p=body.min_p,
        repetition_penalty=body.repetition_penalty,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        seed=body.seed,
        stop=body.stop_list,
        stop_token_ids=list(body.stop_token_ids or []),
        max_tokens=max_tokens,
        ignore_eos=body.ignore_eos,
        speculative=body.speculative,
        logit_bias=bias,
        logprobs=logprobs,
    )


@dataclass
class Collected:
    """One finished choice."""

    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    prompt_logprobs: list[TokenLogprob | None] | None = None
    finish_reason: FinishReason | None = None
    usage: Usage = field(default_factory=Usage)


def add_usage(total: Usage, usage: Usage, *, new_prompt: bool) -> None:
    """Sum usage over choices: a prompt's tokens count once however many choices share it."""
    if new_prompt:
        total.prompt_tokens += usage.prompt_tokens
        total.cached_tokens += usage.cached_tokens
    total.completion_tokens += usage.completion_tokens


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
        if event.prompt_logprobs is not None:
            out.prompt_logprobs = event.prompt_logprobs
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
