"""Starting generations: each choice primed with its first event, all at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from luodi.api.pipeline.exchange import Primed
from luodi.engine.base import Engine
from luodi.engine.types import GenerationEvent, GenerationRequest

__all__ = ["prime", "prime_all"]


async def prime(engine: Engine, request: GenerationRequest) -> Primed:
    """Start a generation and wait for its first event, so early errors become HTTP errors."""
    stream = engine.generate(request)
    try:
        first = await anext(stream)
    except BaseException:
        await stream.aclose()  # type: ignore[attr-defined]
        raise
    return first, stream


async def prime_all(engine: Engine, requests: list[GenerationRequest]) -> list[Primed]:
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


async def _close_started(tasks: Sequence[asyncio.Future[Primed]]) -> None:
    for task in tasks:
        if not task.cancelled() and task.exception() is None:
            stream: AsyncIterator[GenerationEvent] = task.result()[1]
            await stream.aclose()  # type: ignore[attr-defined]
