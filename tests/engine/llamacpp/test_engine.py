"""The embedded engine on the real default model: batching, streaming, caching, limits."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.engine.observer import EngineObserver
from luodi.engine.types import FinishReason, GenerationEvent, GenerationRequest, SamplingParams
from luodi.errors import ContextLengthError, InvalidRequestError, ModelLoadError, QueueFullError
from tests.conftest import default_gguf, engine_settings

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


def greedy(n: int = 24, **kw: object) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_tokens=n, **kw)  # type: ignore[arg-type]


async def run(
    engine: LlamaCppEngine, prompt: str, params: SamplingParams
) -> tuple[str, list[GenerationEvent]]:
    events = [e async for e in engine.generate(GenerationRequest(engine.tokenize(prompt), params))]
    return "".join(e.text for e in events), events


async def wait_until(predicate: object, limit_s: float = 10.0) -> None:
    """Bounded poll for state owned by the engine thread (no awaitable exists for it)."""
    deadline = time.monotonic() + limit_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_greedy_output_is_identical_alone_and_in_a_batch_of_32(model_cache: Path) -> None:
    # A fresh engine: flash attention sums a sequence's KV cells in cache-index order,
    # and on a cache fragmented by earlier traffic a sequence's new cells can land before
    # its shared prefix's, a last-bits difference that can flip a near-tie
    # (docs/architecture.md, "Batch invariance"). This test is about batch composition.
    engine = LlamaCppEngine(engine_settings(model_cache))
    await engine.start()
    try:
        target = "A recipe for pancakes: mix flour,"
        alone, _ = await run(engine, target, greedy(32))
        others = [f"{PROMPTS[i % len(PROMPTS)]} (variant {i})" for i in range(31)]
        results = await asyncio.gather(
            run(engine, target, greedy(32)), *(run(engine, p, greedy(32)) for p in others)
        )
    finally:
        await engine.stop()
    assert results[0][0] == alone
    assert alone.strip()


async def test_chinese_stream_never_splits_a_character(engine: LlamaCppEngine) -> None:
    text, events = await run(engine, "请用中文介绍一下长城：", greedy(48))
    assert text.strip()
    assert all("\ufffd" not in e.text for e in events)
    tokens = [t for e in events for t in e.token_ids]
    assert engine.detokenize(tokens).startswith(text)


async def test_usage_and_finish_reason_are_reported_on_the_last_event(
    engine: LlamaCppEngine,
) -> None:
    _, events = await run(engine, "Hello there", greedy(5, ignore_eos=True))
    last = events[-1]
    assert last.finish_reason is FinishReason.LENGTH
    assert last.usage is not None and last.usage.completion_tokens == 5
    assert all(not e.finished for e in events[:-1])
    assert events[0].queued_s is not None


async def test_stop_string_ends_generation_and_is_not_emitted(engine: LlamaCppEngine) -> None:
    free, _ = await run(engine, "Count: 1, 2, 3, 4,", greedy(20))
    assert " 6" in free, free
    text, events = await run(engine, "Count: 1, 2, 3, 4,", greedy(20, stop=[" 6"]))
    assert events[-1].finish_reason is FinishReason.STOP
    assert " 6" not in text and free.startswith(text)


async def test_same_seed_gives_same_sample_and_sampling_varies(model_cache: Path) -> None:
    # A fresh engine, so both runs see the same KV-cell layout (see docs/architecture.md).
    eng = LlamaCppEngine(
        engine_settings(model_cache, n_ctx=2048, max_batch_size=4, prefix_cache=False)
    )
    await eng.start()
    try:
        params = SamplingParams(temperature=1.0, top_k=40, top_p=0.95, max_tokens=16, seed=1234)
        a, _ = await run(eng, "My favourite animal is", params)
        b, _ = await run(eng, "My favourite animal is", params)
        assert a == b
        others = set()
        for s in range(4):
            sample = SamplingParams(temperature=1.5, max_tokens=16, seed=s)
            others.add((await run(eng, "My favourite animal is", sample))[0])
        assert len(others) > 1
    finally:
        await eng.stop()


async def test_requests_arriving_together_compute_a_shared_system_prompt_once(
    engine: LlamaCppEngine,
) -> None:
    system = f"[policy {time.time_ns()}] " + "Verify the caller before discussing balances. " * 12
    n_system = len(engine.tokenize(system))
    results = await asyncio.gather(
        *(run(engine, f"{system}Question {i}: what is my limit?", greedy(2)) for i in range(4))
    )
    cached = sorted(events[-1].usage.cached_tokens for _, events in results)  # type: ignore[union-attr]
    assert cached[0] < n_system // 2  # one request computed the shared part...
    assert all(c >= n_system - 2 for c in cached[1:]), (cached, n_system)  # ...the rest copied it


async def test_logit_bias_bans_a_token(engine: LlamaCppEngine) -> None:
    _, events = await run(engine, "The capital of France is", greedy(8))
    first = events[0].token_ids[0]
    _, banned = await run(engine, "The capital of France is", greedy(8, logit_bias={first: -100.0}))
    assert banned[0].token_ids[0] != first


async def test_logit_bias_on_other_tokens_keeps_greedy_output(engine: LlamaCppEngine) -> None:
    text, events = await run(engine, "The capital of France is", greedy(8))
    chosen = {t for e in events for t in e.token_ids}
    others = [t for t in range(1000, 1100) if t not in chosen]
    biased, _ = await run(
        engine,
        "The capital of France is",
        greedy(8, logit_bias={**dict.fromkeys(others, -5.0), others[0]: 0.5}),
    )
    lowered, _ = await run(
        engine, "The capital of France is", greedy(8, logit_bias=dict.fromkeys(others, -5.0))
    )
    assert biased == text
    assert lowered == text


async def test_logit_bias_can_force_a_token(engine: LlamaCppEngine) -> None:
    forced = engine.tokenize(" lighthouse", add_special=False)[0]
    _, events = await run(engine, "The capital of France is", greedy(4, logit_bias={forced: 100.0}))
    assert [t for e in events for t in e.token_ids] == [forced] * 4


async def test_penalties_change_repetitive_output(engine: LlamaCppEngine) -> None:
    plain, _ = await run(engine, "The capital of France is", greedy(40))
    penalised, _ = await run(
        engine,
        "The capital of France is",
        greedy(40, repetition_penalty=1.5, frequency_penalty=1.0),
    )
    assert plain != penalised


async def test_logprobs_report_chosen_token_and_alternatives(engine: LlamaCppEngine) -> None:
    _, events = await run(engine, "The capital of France is", greedy(3, logprobs=3))
    lp = events[0].logprobs[0]
    assert lp.logprob <= 0.0 and len(lp.top) == 3
    assert lp.top[0][1] >= lp.top[1][1] >= lp.top[2][1]
    assert lp.top[0][0] == lp.token  # greedy picks the most likely token


async def test_prompt_beyond_context_is_refused_with_both_numbers(engine: LlamaCppEngine) -> None:
    req = GenerationRequest(engine.tokenize("hi"), greedy(engine.max_model_len))
    with pytest.raises(ContextLengthError) as info:
        await anext(engine.generate(req))
    asked = len(req.prompt_tokens) + engine.max_model_len
    assert f"maximum context length is {engine.max_model_len} tokens" in info.value.message
    assert f"asks for {asked} tokens" in info.value.message


async def test_bad_request_fails_alone_while_others_finish(engine: LlamaCppEngine) -> None:
    good = asyncio.create_task(run(engine, "The capital of France is", greedy(16)))
    bad = GenerationRequest(engine.tokenize("x"), greedy(4, grammar="root ::= ( broken"))
    with pytest.raises(InvalidRequestError):
        async for _ in engine.generate(bad):
            pass
    text, events = await good
    assert events[-1].finish_reason in {FinishReason.LENGTH, FinishReason.STOP} and text


class Finishes:
    """Forwards to the engine's observer, and queues how each request ended."""

    def __init__(self, inner: EngineObserver) -> None:
        self.inner = inner
        self.ended: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def on_finished(
        self, reason: str, prompt_tokens: int, completion_tokens: int, e2e_s: float
    ) -> None:
        self.inner.on_finished(reason, prompt_tokens, completion_tokens, e2e_s)
        self._loop.call_soon_threadsafe(self.ended.put_nowait, (reason, completion_tokens))


async def test_stream_left_early_is_cancelled_and_frees_its_kv_cells(
    engine: LlamaCppEngine,
) -> None:
    # 4,000 tokens would hold the engine for a minute or more if the abort were lost;
    # it ends within a few steps of the hang-up (counted in tokens, not seconds: on a
    # loaded machine one step can take a second).
    req = GenerationRequest(engine.tokenize("Tell me a long story."), greedy(4000, ignore_eos=True))
    finishes = Finishes(engine.observer)
    engine.observer = finishes
    try:
        stream = engine.generate(req)
        received = 0
        async for _ in stream:
            received += 1
            if received == 3:
                break
        await stream.aclose()
        reason, completion_tokens = await asyncio.wait_for(finishes.ended.get(), timeout=120)
    finally:
        engine.observer = finishes.inner
    assert reason == FinishReason.CANCELLED.value
    assert completion_tokens <= received + 16, completion_tokens
    # The step that ends it gives its cells back.
    await wait_until(lambda: all(p == -1 for p in engine.running_kv_positions()))
    assert engine.health()["running"] == 0


async def test_shared_prefix_is_reused_and_gives_the_same_tokens(engine: LlamaCppEngine) -> None:
    system = "You are a careful assistant for a bank. Answer briefly. " * 12
    cold_text, _ = await run(engine, system + "Question: what is a loan?", greedy(12))
    warm_text, warm = await run(engine, system + "Question: what is a loan?", greedy(12))
    assert warm[-1].usage is not None and warm[-1].usage.cached_tokens > 100
    assert warm_text == cold_text
    _, other = await run(engine, system + "Question: what is interest?", greedy(4))
    assert (
        other[-1].usage is not None
        and other[-1].usage.cached_tokens >= len(engine.tokenize(system)) - 2
    )


async def test_full_waiting_queue_answers_429(model_cache: Path) -> None:
    eng = LlamaCppEngine(engine_settings(model_cache, max_batch_size=1, max_queue=1, n_ctx=2048))
    await eng.start()
    try:
        params = greedy(200, ignore_eos=True)
        first = eng.generate(GenerationRequest(eng.tokenize("one"), params))
        await anext(first)  # running
        second = eng.generate(GenerationRequest(eng.tokenize("two"), params))
        second_task = asyncio.create_task(anext(second))
        await asyncio.sleep(0)  # let the second request reach the queue
        third = eng.generate(GenerationRequest(eng.tokenize("three"), params))
        with pytest.raises(QueueFullError):
            await anext(third)
        await first.aclose()
        second_task.cancel()
    finally:
        await eng.stop()


async def test_warm_prefix_is_pinned_and_reloaded_from_disk_on_restart(tmp_path: Path) -> None:
    prefix = "系统提示：你是一名银行客服助手，回答要简洁、准确、礼貌。" * 8
    # Its own cache dir, for the saved prefix; the session's copy of the model.
    settings = engine_settings(
        tmp_path, model=str(default_gguf()), n_ctx=2048, max_batch_size=4, warm_prefixes=[prefix]
    )
    first = LlamaCppEngine(settings)
    await first.start()
    try:
        assert first._warm is not None and first._warm.computed == 1
        text1, _ = await run(first, prefix + "问：怎么开户？", greedy(8))
    finally:
        await first.stop()
    second = LlamaCppEngine(settings)
    await second.start()
    try:
        assert second._warm is not None and second._warm.loaded_from_disk == 1
        text2, ev2 = await run(second, prefix + "问：怎么开户？", greedy(8))
        assert (
            ev2[-1].usage is not None
            and ev2[-1].usage.cached_tokens >= len(second.tokenize(prefix)) - 1
        )
        assert text2 == text1
    finally:
        await second.stop()


async def start_answer_stop(eng: LlamaCppEngine) -> None:
    """Start ``eng``, check that it answers a short greedy request, stop it."""
    await eng.start()
    try:
        text, _ = await run(eng, "The capital of France is", greedy(4))
        assert text
    finally:
        await eng.stop()


async def test_model_loads_and_warms_on_the_engine_thread(model_cache: Path) -> None:
    # ggml's OpenMP build keeps a worker team per thread that ever decoded; a second
    # live team throttles every barrier in the decode that serves requests.
    seen: list[str] = []

    @contextlib.contextmanager
    def opener(path: Path) -> Iterator[Path]:
        seen.append(threading.current_thread().name)
        yield path

    eng = LlamaCppEngine(engine_settings(model_cache, n_ctx=2048, max_batch_size=2), opener=opener)
    await start_answer_stop(eng)
    assert seen == ["luodi-engine"]


async def test_a_model_that_cannot_load_fails_start_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    eng = LlamaCppEngine(engine_settings(tmp_path, model=str(bad), n_ctx=2048))
    with pytest.raises(ModelLoadError, match=r"broken\.gguf"):
        await eng.start()


async def test_a_cancelled_start_frees_the_model_and_can_start_again(model_cache: Path) -> None:
    proceed, released = threading.Event(), threading.Event()

    @contextlib.contextmanager
    def opener(path: Path) -> Iterator[Path]:
        proceed.wait(30)  # still loading when start() is cancelled
        try:
            yield path
        finally:
            released.set()

    eng = LlamaCppEngine(engine_settings(model_cache, n_ctx=2048, max_batch_size=2), opener=opener)
    starting = asyncio.create_task(eng.start())
    await asyncio.sleep(0.1)
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    proceed.set()
    # The engine thread finishes loading, then lets go of the model and its file.
    assert await asyncio.to_thread(released.wait, 60)
    released.clear()
    await start_answer_stop(eng)
    assert released.is_set()
