"""The scheduler alone, with hand-made sequences: no model, no llama.cpp."""

from __future__ import annotations

import pytest

from luodi.engine.llamacpp.kv_cache import CopyKV, FreeKV, PrefixCache, SeqIdPool
from luodi.engine.llamacpp.scheduler import Scheduler
from luodi.engine.llamacpp.sequence import Sequence, SequenceStatus
from luodi.engine.types import FinishReason, GenerationRequest, Priority, SamplingParams
from luodi.errors import QueueFullError


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_seq(
    n_prompt: int = 8,
    *,
    rid: str | None = None,
    priority: Priority = Priority.NORMAL,
    arrival: float = 0.0,
    max_tokens: int = 16,
    prompt: list[int] | None = None,
) -> Sequence:
    tokens = prompt if prompt is not None else list(range(100, 100 + n_prompt))
    req = GenerationRequest(
        tokens,
        SamplingParams(max_tokens=max_tokens),
        priority=priority,
        arrival_time=arrival,
    )
    if rid:
        req.request_id = rid
    return Sequence(req)


def make_scheduler(
    *,
    batch: int = 4,
    prefill: int = 64,
    capacity: int = 4096,
    queue: int = 16,
    cache_slots: int = 0,
    share_min: int = 0,
    clock: FakeClock | None = None,
) -> Scheduler:
    clock = clock or FakeClock()
    cache = PrefixCache(range(batch, batch + cache_slots), clock=clock) if cache_slots else None
    return Scheduler(
        max_batch_size=batch,
        prefill_chunk=prefill,
        kv_capacity=capacity,
        max_queue=queue,
        seq_ids=SeqIdPool(range(batch)),
        prefix_cache=cache,
        share_min_tokens=share_min,
        clock=clock,
    )


def run_step(sched: Scheduler, token: int = 7) -> list[Sequence]:
    out = sched.schedule()
    sampled = {c.seq.request_id: token for c in out.chunks if c.sample}
    return sched.update(out, sampled)


def test_new_request_joins_running_batch_at_next_step() -> None:
    sched = make_scheduler()
    a = make_seq(rid="a")
    sched.add(a)
    run_step(sched)
    assert a.output_tokens == [7]
    b = make_seq(rid="b")
    sched.add(b)
    out = sched.schedule()
    ids = {(c.seq.request_id, c.sample) for c in out.chunks}
    assert ("a", True) in ids and ("b", True) in ids


def test_long_prompt_is_prefilled_in_chunks_while_others_keep_decoding() -> None:
    sched = make_scheduler(prefill=32)
    short = make_seq(4, rid="short")
    sched.add(short)
    run_step(sched)
    long = make_seq(100, rid="long")
    sched.add(long)
    steps_with_short_decoding = 0
    for _ in range(4):
        out = sched.schedule()
        by_id = {c.seq.request_id: c for c in out.chunks}
        assert len(by_id["long"].tokens) <= 32
        steps_with_short_decoding += "short" in by_id
        sched.update(out, {c.seq.request_id: 1 for c in out.chunks if c.sample})
    assert steps_with_short_decoding == 4
    assert long.n_computed == 100 and long.output_tokens == [1]


def test_decode_tokens_go_first_and_prefill_stays_within_budget() -> None:
    sched = make_scheduler(batch=8, prefill=10)
    for i in range(3):
        sched.add(make_seq(30, rid=f"p{i}"))
    out = sched.schedule()
    assert out.num_tokens == 10


def test_batch_never_exceeds_max_batch_size() -> None:
    sched = make_scheduler(batch=2)
    seqs = [make_seq(rid=f"s{i}") for i in range(5)]
    for s in seqs:
        sched.add(s)
    out = sched.schedule()
    assert len(out.admitted) == 2
    assert len(sched.waiting) == 3


def test_full_waiting_queue_answers_queue_full() -> None:
    sched = make_scheduler(queue=2)
    sched.add(make_seq())
    sched.add(make_seq())
    with pytest.raises(QueueFullError) as info:
        sched.add(make_seq())
    assert info.value.status_code == 429
    assert "Retry-After" in info.value.headers()


def test_higher_priority_is_admitted_first() -> None:
    sched = make_scheduler(batch=1)
    low = make_seq(rid="low", priority=Priority.LOW)
    high = make_seq(rid="high", priority=Priority.HIGH)
    sched.add(low)
    sched.add(high)
    out = sched.schedule()
    assert [s.request_id for s in out.admitted] == ["high"]


def test_waiting_low_priority_request_is_not_starved() -> None:
    clock = FakeClock()
    sched = make_scheduler(batch=1, clock=clock)
    old_low = make_seq(rid="old-low", priority=Priority.LOW, arrival=0.0)
    sched.add(old_low)
    clock.now = 25.0  # aged by 2.5 classes at the default 10 s per class
    fresh_high = make_seq(rid="fresh-high", priority=Priority.HIGH, arrival=25.0)
    sched.add(fresh_high)
    out = sched.schedule()
    assert [s.request_id for s in out.admitted] == ["old-low"]


def test_cancelled_request_leaves_and_frees_its_sequence_id() -> None:
    sched = make_scheduler(batch=1)
    a = make_seq(rid="a")
    sched.add(a)
    run_step(sched)
    seq_id = a.seq_id
    sched.abort("a")
    out = sched.schedule()
    assert a in out.finished and a.finish_reason is FinishReason.CANCELLED
    assert FreeKV(seq_id) in out.kv_ops  # type: ignore[arg-type]
    assert not sched.running


def test_cancelled_while_waiting_never_runs() -> None:
    sched = make_scheduler(batch=1)
    a, b = make_seq(rid="a"), make_seq(rid="b")
    sched.add(a)
    sched.add(b)
    run_step(sched)
    sched.abort("b")
    out = sched.schedule()
    assert b in out.finished and b.status is SequenceStatus.FINISHED
    assert all(c.seq is not b for c in out.chunks)


def test_shared_prefix_with_running_sequence_is_copied_not_recomputed() -> None:
    sched = make_scheduler(cache_slots=2)
    system = list(range(1, 41))
    a = make_seq(prompt=[*system, 900, 901], rid="a")
    sched.add(a)
    run_step(sched)
    b = make_seq(prompt=[*system, 950], rid="b")
    sched.add(b)
    out = sched.schedule()
    assert CopyKV(a.seq_id, b.seq_id, 40) in out.kv_ops  # type: ignore[arg-type]
    assert b.cached_tokens == 40
    prefill = next(c for c in out.chunks if c.seq is b)
    assert prefill.tokens == [950] and prefill.start_pos == 40


def test_requests_arriving_together_compute_their_shared_prefix_once() -> None:
    sched = make_scheduler(cache_slots=2, share_min=32)
    system = list(range(1, 41))
    a = make_seq(prompt=[*system, 900], rid="a")
    b = make_seq(prompt=[*system, 950, 951], rid="b")
    sched.add(a)
    sched.add(b)
    out = sched.schedule()
    assert out.admitted == [a] and b in sched.waiting  # b waits one step for a's prefill
    sched.update(out, {"a": 7})
    out = sched.schedule()
    assert out.admitted == [b]
    assert CopyKV(a.seq_id, b.seq_id, 40) in out.kv_ops  # type: ignore[arg-type]
    assert next(c for c in out.chunks if c.seq is b).tokens == [950, 951]


def test_short_shared_prefix_is_recomputed_rather_than_waited_for() -> None:
    sched = make_scheduler(cache_slots=2, share_min=32)
    a = make_seq(prompt=[1, 2, 3, 4, 900], rid="a")
    b = make_seq(prompt=[1, 2, 3, 4, 950], rid="b")
    sched.add(a)
    sched.add(b)
    assert sched.schedule().admitted == [a, b]


def test_waiting_for_a_shared_prefix_ends_when_its_leader_is_cancelled() -> None:
    sched = make_scheduler(cache_slots=2, share_min=32)
    system = list(range(1, 41))
    a = make_seq(prompt=[*system, 900], rid="a")
    b = make_seq(prompt=[*system, 950], rid="b")
    sched.add(a)
    sched.add(b)
    assert sched.schedule().admitted == [a]
    sched.abort("a")
    out = sched.schedule()
    assert out.admitted == [b] and b.cached_tokens == 0


def test_finished_prompt_is_kept_in_prefix_cache_and_reused() -> None:
    sched = make_scheduler(cache_slots=2)
    prompt = list(range(1, 21))
    a = make_seq(prompt=prompt, rid="a")
    sched.add(a)
    run_step(sched)
    sched.finish(a, FinishReason.STOP)
    out = sched.schedule()
    assert any(isinstance(op, CopyKV) and op.n_tokens == 20 for op in out.kv_ops)
    b = make_seq(prompt=[*prompt, 5, 6], rid="b")
    sched.add(b)
    out = sched.schedule()
    assert b.cached_tokens == 20


def test_whole_prompt_match_still_recomputes_last_token() -> None:
    sched = make_scheduler(cache_slots=2)
    prompt = list(range(1, 21))
    a = make_seq(prompt=prompt, rid="a")
    sched.add(a)
    run_step(sched)
    sched.finish(a, FinishReason.STOP)
    sched.schedule()
    b = make_seq(prompt=prompt, rid="b")
    sched.add(b)
    out = sched.schedule()
    chunk = next(c for c in out.chunks if c.seq is b)
    assert b.cached_tokens == 19 and chunk.tokens == [20] and chunk.sample


def test_admission_waits_when_kv_cells_are_reserved() -> None:
    sched = make_scheduler(capacity=100)
    a = make_seq(40, rid="a", max_tokens=40)
    b = make_seq(40, rid="b", max_tokens=40)
    sched.add(a)
    sched.add(b)
    out = sched.schedule()
    assert [s.request_id for s in out.admitted] == ["a"]
    sched.finish(a, FinishReason.STOP)
    out = sched.schedule()
    assert [s.request_id for s in out.admitted] == ["b"]
