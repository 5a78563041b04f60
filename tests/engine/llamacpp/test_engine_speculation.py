"""Speculative decoding on the real default model: faster steps, the same output."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from luodi.chat import response_format_grammar
from luodi.engine.llamacpp.draft_model import check_vocab
from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.engine.observer import DraftTally
from luodi.engine.types import FinishReason, GenerationEvent, GenerationRequest, SamplingParams
from luodi.errors import ModelLoadError
from tests.conftest import default_gguf, engine_settings

pytestmark = pytest.mark.model

PASSAGE = (
    "Refunds are issued to the original payment method within seven business days of"
    " the returned item reaching our warehouse. Items must be unused and in their"
    " original packaging. Shipping fees are refunded only when the item arrived damaged."
)
# A prompt whose answer copies its context, as a grounded knowledge-base answer does.
QUOTING = f"Policy: {PASSAGE}\n\nThe policy, quoted word for word:\nRefunds are issued"


@pytest.fixture(scope="module")
async def engines(model_cache: Path) -> AsyncIterator[tuple[LlamaCppEngine, LlamaCppEngine]]:
    """A speculating engine and one that never drafts, both fresh.

    The first drafts as a GPU would (a step's fixed cost far above a token's), so every
    test exercises long verified runs whatever this machine's measured costs.
    """
    eager = {"fixed_cost_tokens": 1000.0}
    fast = LlamaCppEngine(engine_settings(model_cache, speculative=eager), observer=DraftTally())
    plain = LlamaCppEngine(engine_settings(model_cache, speculative={"enabled": False}))
    await fast.start()
    await plain.start()
    yield fast, plain
    await fast.stop()
    await plain.stop()


async def generate(
    engine: LlamaCppEngine, prompt: str, params: SamplingParams
) -> list[GenerationEvent]:
    req = GenerationRequest(engine.tokenize(prompt), params)
    return [e async for e in engine.generate(req)]


def text(events: list[GenerationEvent]) -> str:
    return "".join(e.text for e in events)


def tokens(events: list[GenerationEvent]) -> list[int]:
    return [t for e in events for t in e.token_ids]


async def test_greedy_output_is_identical_and_drafts_are_accepted(
    engines: tuple[LlamaCppEngine, LlamaCppEngine],
) -> None:
    fast, plain = engines
    drafts = fast.observer
    assert isinstance(drafts, DraftTally)
    before = drafts.accepted
    params = SamplingParams(temperature=0.0, max_tokens=48)
    got = await generate(fast, QUOTING, params)
    want = await generate(plain, QUOTING, params)
    assert tokens(got) == tokens(want)
    assert text(got) == text(want)
    assert drafts.accepted - before >= 10  # the answer copies its context


async def test_a_sampled_answer_draws_the_same_tokens_for_the_same_seed(
    engines: tuple[LlamaCppEngine, LlamaCppEngine],
) -> None:
    fast, plain = engines
    for seed in (1, 2, 3):
        params = SamplingParams(temperature=0.8, top_p=0.95, seed=seed, max_tokens=40)
        got = await generate(fast, QUOTING, params)
        want = await generate(plain, QUOTING, params)
        assert tokens(got) == tokens(want), seed


async def test_limits_stops_and_usage_hold_inside_a_verified_run(
    engines: tuple[LlamaCppEngine, LlamaCppEngine],
) -> None:
    fast, plain = engines
    for params in (
        SamplingParams(temperature=0.0, max_tokens=7),
        SamplingParams(temperature=0.0, max_tokens=48, stop=["warehouse"]),
        SamplingParams(temperature=0.0, max_tokens=20, logprobs=2),
    ):
        got = await generate(fast, QUOTING, params)
        want = await generate(plain, QUOTING, params)
        assert text(got) == text(want)
        assert got[-1].finish_reason == want[-1].finish_reason
        assert got[-1].usage == want[-1].usage
        assert len(got) == len(want)  # one event per token, as without drafts
        if params.logprobs:
            assert [lp.logprob for e in got for lp in e.logprobs] == pytest.approx(
                [lp.logprob for e in want for lp in e.logprobs], abs=1e-4
            )
    events = await generate(fast, QUOTING, SamplingParams(temperature=0.0, max_tokens=7))
    assert events[-1].finish_reason is FinishReason.LENGTH
    assert events[-1].usage is not None and events[-1].usage.completion_tokens == 7


async def test_json_schema_output_is_unchanged(
    engines: tuple[LlamaCppEngine, LlamaCppEngine],
) -> None:
    fast, plain = engines
    schema = {
        "type": "object",
        "properties": {"quote": {"type": "string", "maxLength": 120}},
        "required": ["quote"],
        "additionalProperties": False,
    }
    grammar = response_format_grammar(
        {"type": "json_schema", "json_schema": {"name": "q", "schema": schema, "strict": True}}
    )
    params = SamplingParams(temperature=0.0, max_tokens=40, grammar=grammar)
    prompt = f"{QUOTING[: -len('Refunds are issued')]}" + '{"quote": "'
    got = await generate(fast, prompt, params)
    want = await generate(plain, prompt, params)
    assert text(got) == text(want)


async def test_concurrent_requests_keep_their_output_and_give_back_every_cell(
    engines: tuple[LlamaCppEngine, LlamaCppEngine],
) -> None:
    fast, plain = engines
    prompts = [QUOTING, f"{PASSAGE} {PASSAGE[:60]}", "1, 2, 3, 4, 5, 6, 1, 2, 3,"]
    params = SamplingParams(temperature=0.0, max_tokens=32)
    got = await asyncio.gather(*(generate(fast, p, params) for p in prompts))
    want = [await generate(plain, p, params) for p in prompts]
    assert [tokens(e) for e in got] == [tokens(e) for e in want]
    health = fast.health()
    assert health["running"] == 0
    # Only cached prefixes hold cells: what each request computed and kept, nothing more.
    assert fast.running_kv_positions() == [-1] * fast.settings.max_batch_size


async def test_a_request_can_opt_out(engines: tuple[LlamaCppEngine, LlamaCppEngine]) -> None:
    fast, _ = engines
    drafts = fast.observer
    assert isinstance(drafts, DraftTally)
    before = drafts.drafted
    await generate(fast, QUOTING, SamplingParams(temperature=0.0, max_tokens=24, speculative=False))
    assert drafts.drafted == before


async def test_a_draft_model_of_the_same_vocabulary_drafts_free_text(
    model_cache: Path, engines: tuple[LlamaCppEngine, LlamaCppEngine]
) -> None:
    # The default model drafting for itself: its greedy guesses are the target's own
    # choices, so nearly every draft token is kept, on free text where lookup finds none.
    _, plain = engines
    drafts = DraftTally()
    spec = {"fixed_cost_tokens": 1000.0, "draft_model": str(default_gguf())}
    engine = LlamaCppEngine(engine_settings(model_cache, speculative=spec), observer=drafts)
    await engine.start()
    try:
        prompts = ["Once upon a time, in a small village,", QUOTING]
        params = SamplingParams(temperature=0.0, max_tokens=32)
        got = await asyncio.gather(*(generate(engine, p, params) for p in prompts))
        again = await generate(engine, prompts[0], params)  # its draft KV is reused
    finally:
        await engine.stop()
    want = [await generate(plain, p, params) for p in prompts]
    assert [tokens(e) for e in got] == [tokens(e) for e in want]
    assert tokens(again) == tokens(want[0])
    assert drafts.drafted >= 40 and drafts.accepted >= 0.8 * drafts.drafted


async def test_a_draft_model_that_cannot_load_fails_start(
    model_cache: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF" + b"\0" * 64)  # not a model at all
    spec = {"draft_model": str(other)}
    engine = LlamaCppEngine(engine_settings(model_cache, speculative=spec))
    with pytest.raises(ModelLoadError, match=r"other\.gguf"):
        await engine.start()


class Vocab:
    """The vocabulary side of a model: what the compatibility check reads."""

    def __init__(self, name: str, pieces: list[bytes]) -> None:
        self.path = Path(name)
        self.n_vocab = len(pieces)
        self._pieces = pieces

    def piece(self, token: int) -> bytes:
        return self._pieces[token]


def test_a_draft_model_of_another_vocabulary_is_refused() -> None:
    target = Vocab("big.gguf", [b"a", b"b", b"c"])
    check_vocab(Vocab("small.gguf", [b"a", b"b", b"c"]), target)  # type: ignore[arg-type]
    with pytest.raises(ModelLoadError, match="has 2 tokens"):
        check_vocab(Vocab("small.gguf", [b"a", b"b"]), target)  # type: ignore[arg-type]
    with pytest.raises(ModelLoadError, match="token 1 of the draft model"):
        check_vocab(Vocab("small.gguf", [b"a", b"x", b"c"]), target)  # type: ignore[arg-type]
