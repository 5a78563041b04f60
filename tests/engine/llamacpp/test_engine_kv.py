"""KV cells on the real model: taken as answers grow, given back by preemption."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.engine.observer import NullObserver, StepKind
from luodi.engine.types import FinishReason, GenerationEvent, GenerationRequest, SamplingParams
from tests.conftest import engine_settings

pytestmark = pytest.mark.model

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "def fibonacci(n):",
    "北京是中国的首都，",
    "The three primary colors are",
    "To make a cup of tea, first",
    "In 1969, the first humans",
    "The quick brown fox",
]


SERIES = [
    "1, 2, 3, 4, 5,",
    "Monday, Tuesday, Wednesday,",
    "a b c d e f g",
    "January, February, March,",
]
PINNED = "A pinned prefix holds its cells for good. " * 12  # 110 tokens


class PeakBatch(NullObserver):
    """The most sequences one step decoded together."""

    def __init__(self) -> None:
        self.peak = 0

    def on_step(
        self, batch_size: int, n_tokens: int, seconds: float, kind: StepKind = "decode"
    ) -> None:
        self.peak = max(self.peak, batch_size)


def to_context_end(engine: LlamaCppEngine, tokens: list[int], **kw: object) -> SamplingParams:
    """What the API asks for when a chat request sets no max_tokens: the context's end."""
    return SamplingParams(temperature=0.0, max_tokens=engine.max_model_len - len(tokens), **kw)  # type: ignore[arg-type]


def assert_cells_within_cache(engine: LlamaCppEngine) -> None:
    health = engine.health()
    assert 0 <= health["kv_reserved_cells"] <= health["kv_cells"], health  # type: ignore[operator]


async def first_events(engine: LlamaCppEngine, prompt: str, n: int) -> list[GenerationEvent]:
    """Stream a request without max_tokens; hang up after ``n`` events."""
    tokens = engine.tokenize(prompt)
    stream = engine.generate(GenerationRequest(tokens, to_context_end(engine, tokens)))
    events: list[GenerationEvent] = []
    async for event in stream:
        assert_cells_within_cache(engine)
        events.append(event)
        if len(events) == n or event.finished:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    return events


async def token_ids(engine: LlamaCppEngine, prompt: str, params: SamplingParams) -> list[int]:
    req = GenerationRequest(engine.tokenize(prompt), params)
    return [t async for e in engine.generate(req) for t in e.token_ids]


async def test_requests_without_max_tokens_are_decoded_together(model_cache: Path) -> None:
    # Each may run to the end of a 2,048-cell context; none reserves that up front.
    peak = PeakBatch()
    eng = LlamaCppEngine(engine_settings(model_cache, n_ctx=2048, max_batch_size=8), peak)
    await eng.start()
    try:
        results = await asyncio.gather(*(first_events(eng, p, 6) for p in PROMPTS))
    finally:
        await eng.stop()
    assert all(len(events) == 6 for events in results)
    assert peak.peak > 1, "requests without max_tokens ran one at a time"


def tiny_cache(model_cache: Path) -> LlamaCppEngine:
    """256 cells less 64 kept spare and 110 pinned by a warm prefix: 82 for requests."""
    return LlamaCppEngine(
        engine_settings(model_cache, n_ctx=256, max_batch_size=8, warm_prefixes=[PINNED])
    )


async def test_preempted_requests_give_the_same_greedy_tokens_as_alone(model_cache: Path) -> None:
    # Four prompts of 7-15 tokens and 24-token answers outgrow 82 cells together. Their
    # continuations have no near-ties: cells that preemption and eviction free are
    # refilled out of position order, and that alone can flip a near-tie on this small
    # model (docs/architecture.md, "Batch invariance"), preempted or not.
    eng = tiny_cache(model_cache)
    await eng.start()
    try:
        params = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)
        alone = [await token_ids(eng, p, params) for p in SERIES]
        assert eng.health()["preemptions"] == 0
        together = await asyncio.gather(*(token_ids(eng, p, params) for p in SERIES))
        health = eng.health()
    finally:
        await eng.stop()
    assert health["preemptions"], "the cache never filled: the test proves nothing"
    assert list(together) == alone
    assert all(len(ids) == 24 for ids in alone)


async def test_answer_that_outgrows_the_kv_cache_ends_with_length(model_cache: Path) -> None:
    eng = tiny_cache(model_cache)
    await eng.start()
    try:
        tokens = eng.tokenize("Once upon a time")
        req = GenerationRequest(tokens, to_context_end(eng, tokens, ignore_eos=True))
        events = [e async for e in eng.generate(req)]
        assert_cells_within_cache(eng)
    finally:
        await eng.stop()
    last = events[-1]
    assert last.finish_reason is FinishReason.LENGTH and last.error is None
    assert last.usage is not None
    assert 60 < last.usage.total_tokens <= 82 + 1  # the cells left, and the token sampled last
    assert "".join(e.text for e in events).strip()


async def test_default_max_tokens_caps_only_requests_that_name_no_limit(
    model_cache: Path,
) -> None:
    uncapped = LlamaCppEngine(engine_settings(model_cache, n_ctx=1024, max_batch_size=2))
    capped = LlamaCppEngine(
        engine_settings(model_cache, n_ctx=1024, max_batch_size=2, default_max_tokens=100)
    )
    for eng in (uncapped, capped):
        await eng.start()
    try:
        assert uncapped.default_max_tokens(24) == uncapped.max_model_len - 24
        assert capped.default_max_tokens(24) == 100
        assert capped.default_max_tokens(capped.max_model_len - 10) == 10
    finally:
        for eng in (uncapped, capped):
            await eng.stop()
