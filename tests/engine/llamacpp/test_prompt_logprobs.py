"""Scoring a prompt's own tokens (``prompt_logprobs``): what lm-eval's loglikelihood reads."""

from __future__ import annotations

import asyncio

import pytest

from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.engine.llamacpp.scheduler import SCORING_CHUNK
from luodi.engine.types import FinishReason, GenerationEvent, GenerationRequest, SamplingParams
from luodi.errors import InvalidRequestError

PROMPT = "The capital of France is"


async def events_of(
    engine: LlamaCppEngine, tokens: list[int], params: SamplingParams
) -> list[GenerationEvent]:
    return [e async for e in engine.generate(GenerationRequest(list(tokens), params))]


def scoring(k: int = 0, max_tokens: int = 0) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_tokens=max_tokens, prompt_logprobs=k)


async def test_scores_match_the_logprobs_of_generating_the_same_tokens(
    engine: LlamaCppEngine,
) -> None:
    prompt = engine.tokenize(PROMPT)
    made = await events_of(
        engine, prompt, SamplingParams(temperature=0.0, max_tokens=6, logprobs=0)
    )
    tokens = [t for e in made for t in e.token_ids]
    generated = [lp.logprob for e in made for lp in e.logprobs]
    scored = (await events_of(engine, prompt + tokens, scoring()))[-1].prompt_logprobs
    assert scored is not None and len(scored) == len(prompt) + len(tokens)
    assert scored[0] is None  # nothing precedes the first token
    tail = [s.logprob for s in scored[len(prompt) :] if s is not None]
    assert tail == pytest.approx(generated, abs=1e-3)


async def test_max_tokens_zero_scores_the_prompt_and_generates_nothing(
    engine: LlamaCppEngine,
) -> None:
    prompt = engine.tokenize(PROMPT)
    events = await events_of(engine, prompt, scoring(k=2))
    assert len(events) == 1
    last = events[0]
    assert last.finish_reason is FinishReason.LENGTH and not last.token_ids and not last.text
    assert last.usage is not None and last.usage.prompt_tokens == len(prompt)
    assert last.usage.completion_tokens == 0
    assert last.prompt_logprobs is not None
    for entry, token in zip(last.prompt_logprobs[1:], prompt[1:], strict=True):
        assert entry is not None and entry.logprob <= 0.0 and len(entry.top) == 2
        assert entry.token == engine.detokenize([token]) or entry.token  # the token's text
        assert entry.top[0][1] >= entry.logprob - 1e-6  # the best alternative is at least as likely


async def test_a_cached_prefix_does_not_skip_scores(engine: LlamaCppEngine) -> None:
    prompt = engine.tokenize("A long shared system prompt about bananas. " * 4 + PROMPT)
    await events_of(engine, prompt, SamplingParams(temperature=0.0, max_tokens=2))  # caches it
    first = (await events_of(engine, prompt, scoring()))[-1]
    second = (await events_of(engine, prompt, scoring()))[-1]
    assert first.prompt_logprobs is not None and second.prompt_logprobs is not None
    assert len(first.prompt_logprobs) == len(second.prompt_logprobs) == len(prompt)
    assert second.usage is not None and second.usage.cached_tokens == 0
    assert [e.logprob for e in first.prompt_logprobs[1:] if e] == pytest.approx(
        [e.logprob for e in second.prompt_logprobs[1:] if e], abs=1e-3
    )


async def test_long_prompts_are_scored_across_chunks_beside_other_requests(
    engine: LlamaCppEngine,
) -> None:
    prompt = engine.tokenize("One two three four five six seven eight nine ten. " * 12)
    assert len(prompt) > 3 * SCORING_CHUNK
    alone = (await events_of(engine, prompt, scoring()))[-1].prompt_logprobs
    busy = asyncio.gather(
        *(
            events_of(
                engine, engine.tokenize(f"Story {i}:"), SamplingParams(temperature=0, max_tokens=24)
            )
            for i in range(4)
        )
    )
    together, _ = await asyncio.gather(events_of(engine, prompt, scoring(max_tokens=3)), busy)
    mixed = together[0].prompt_logprobs
    assert alone is not None and mixed is not None and len(alone) == len(mixed) == len(prompt)
    assert [e.logprob for e in mixed[1:] if e] == pytest.approx(
        [e.logprob for e in alone[1:] if e], abs=1e-3
    )
    assert [t for e in together for t in e.token_ids]  # and then it generated


async def test_max_tokens_zero_without_scoring_is_refused(engine: LlamaCppEngine) -> None:
    with pytest.raises(InvalidRequestError, match="max_tokens"):
        await events_of(engine, engine.tokenize(PROMPT), SamplingParams(max_tokens=0))
