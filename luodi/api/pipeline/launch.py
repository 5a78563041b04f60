"""Launch: start every planned choice on the engine (or run the embedder), first event in hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from luodi.api.pipeline.exchange import EmbeddingWork, Exchange, TokenizeWork
from luodi.api.pipeline.priming import prime_all
from luodi.engine.types import GenerationEvent, Usage

__all__ = ["Launch"]


class Launch:
    """Primes each choice, so an error before the first token is still an HTTP error.

    The router notes on each request the backends it gave up on and the one that
    served: both go to the audit record. An embedding request is run right here.
    """

    name = "launch"

    async def run(self, exchange: Exchange) -> None:
        work = exchange.work
        if isinstance(work, EmbeddingWork):
            embedder = exchange.embedder
            assert embedder is not None  # the pipeline resolved it
            work.vectors = list(await asyncio.to_thread(embedder.embed, work.texts))
            exchange.usage = Usage(prompt_tokens=exchange.prompt_tokens)
            return
        if isinstance(work, TokenizeWork):
            exchange.usage = Usage(prompt_tokens=exchange.prompt_tokens)
            return  # Route answered it: nothing runs on the model
        engine = exchange.engine
        assert engine is not None  # the pipeline resolved it
        if exchange.leaves_premises and exchange.masked:
            for req in exchange.requests:  # the router refuses unmasked prompts bound off-premises
                req.pii_protected = True
        try:
            primed = await prime_all(engine, exchange.requests)
            exchange.primed = [(_count(exchange, f), _counted(exchange, s)) for f, s in primed]
        finally:
            for req in exchange.requests:  # backends the router gave up on before one served
                exchange.notes.extend(f"failover from {f}" for f in req.failovers)
        exchange.backend = exchange.requests[0].backend or engine.info.backend


def _tokens(event: GenerationEvent) -> int:
    """Completion tokens in one event: its ids, or one per chunk where an upstream
    sends text without ids (vLLM streams one token a chunk)."""
    if event.token_ids:
        return len(event.token_ids)
    return 1 if event.text or event.reasoning or event.tool_calls else 0


def _count(exchange: Exchange, event: GenerationEvent) -> GenerationEvent:
    exchange.generated += _tokens(event)
    return event


async def _counted(
    exchange: Exchange, stream: AsyncIterator[GenerationEvent]
) -> AsyncIterator[GenerationEvent]:
    """``stream``, counting its tokens as they pass; closing it closes ``stream`` (an abort)."""
    try:
        async for event in stream:
            yield _count(exchange, event)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
