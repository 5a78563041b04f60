"""The scheduler alone, with hand-made sequences: no model, no llama.cpp."""

from __future__ import annotations

import random

import pytest

from luodi.engine.llamacpp.kv_cache import CopyKV, FreeKV, PrefixCache, SeqIdPool
from luodi.engine.llamacpp.scheduler import Scheduler, SchedulerOutput
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
    headroom: int = 16,
    max_preemptions: int = 3,
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
        headroom=headroom,
        max_preemptions=max_preemptions,
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


# -- KV cells: taken as sequences grow, given back by preemption ------------------


def drive(sched: Scheduler, steps: int) -> list[Sequence]:
    """Run ``steps`` steps, sampling token 7 and finishing at max_tokens; the preempted."""
    preempted: list[Sequence] = []
    for _ in range(steps):
        out = sched.schedule()
        assert sched.cells_in_use <= sched.kv_capacity
        preempted += out.preempted
        sampled = {c.seq.request_id: 7 for c in out.chunks if c.sample}
        for seq in sched.update(out, sampled):
            if len(seq.output_tokens) >= seq.request.params.max_tokens:
                sched.finish(seq, FinishReason.LENGTH)
    return preempted


def test_request_without_max_tokens_takes_only_its_prompt_and_headroom() -> None:
    # A chat request without max_tokens may run to the end of the context; eight of
    # them fit together as long as their prompts do.
    sched = make_scheduler(batch=8, prefill=256, capacity=1000, headroom=16)
    for i in range(8):
        sched.add(make_seq(20, rid=f"s{i}", max_tokens=1000 - 20))
    out = sched.schedule()
    assert len(out.admitted) == 8
    assert sched.cells_in_use == 8 * 20


def test_admission_needs_the_prompt_cells_plus_headroom() -> None:
    sched = make_scheduler(capacity=100, headroom=16)
    for rid in "abc":
        sched.add(make_seq(40, rid=rid, max_tokens=1000))
    out = sched.schedule()
    # a: 40 + 16 fits; b: 40 pending + 40 + 16 = 96 fits; c would need 136.
    assert [s.request_id for s in out.admitted] == ["a", "b"]
    assert [s.request_id for s in sched.waiting] == ["c"]


def test_cells_grow_by_one_per_decoded_token() -> None:
    sched = make_scheduler(capacity=100)
    a, b = make_seq(10, rid="a"), make_seq(6, rid="b")
    sched.add(a)
    sched.add(b)
    drive(sched, 1)
    assert sched.cells_in_use == 16  # both prompts computed, first tokens sampled
    drive(sched, 3)
    assert sched.cells_in_use == 16 + 2 * 3
    assert a.n_computed == 13 and b.n_computed == 9


def test_waiting_request_is_admitted_when_cells_free_up() -> None:
    sched = make_scheduler(capacity=60, headroom=4)
    a = make_seq(40, rid="a", max_tokens=2)
    b = make_seq(20, rid="b")
    sched.add(a)
    sched.add(b)
    out = sched.schedule()
    assert out.admitted == [a]  # b: 40 + 20 + 4 > 60
    sched.update(out, {"a": 7})
    out = sched.schedule()
    assert out.admitted == []  # 40 in use and 1 for a's next token: still no room
    sched.update(out, {"a": 7})
    sched.finish(a, FinishReason.STOP)
    assert sched.schedule().admitted == [b]


def test_full_cache_preempts_lowest_priority_first_then_the_newest() -> None:
    sched = make_scheduler(capacity=60, headroom=4)
    a = make_seq(10, rid="a", arrival=0.0, max_tokens=1000)
    b = make_seq(10, rid="b", priority=Priority.LOW, arrival=1.0, max_tokens=1000)
    c = make_seq(10, rid="c", arrival=2.0, max_tokens=1000)
    for seq in (a, b, c):
        sched.add(seq)
    preempted = drive(sched, 40)
    assert [s.request_id for s in preempted[:2]] == ["b", "c"]


def test_cached_prefixes_are_dropped_before_any_sequence_is_preempted() -> None:
    sched = make_scheduler(capacity=60, headroom=4, cache_slots=2)
    done = make_seq(prompt=list(range(500, 520)), rid="done", max_tokens=1)
    sched.add(done)
    drive(sched, 2)
    assert sched.cells_in_use == 20  # its prompt, kept as a cached prefix
    a = make_seq(prompt=list(range(300, 310)), rid="a", max_tokens=1000)
    b = make_seq(prompt=list(range(400, 410)), rid="b", max_tokens=1000)
    sched.add(a)
    sched.add(b)
    freed_cache_at = preempted_at = None
    for step in range(40):
        out = sched.schedule()
        if freed_cache_at is None and any(isinstance(op, FreeKV) for op in out.kv_ops):
            freed_cache_at = step
        if preempted_at is None and out.preempted:
            preempted_at = step
        sched.update(out, {c.seq.request_id: 7 for c in out.chunks if c.sample})
    assert freed_cache_at is not None and preempted_at is not None
    assert freed_cache_at < preempted_at


def test_prefix_cache_is_kept_when_dropping_it_would_not_admit_anyone() -> None:
    sched = make_scheduler(capacity=60, headroom=4, cache_slots=2)
    sched.add(make_seq(prompt=list(range(500, 510)), rid="done", max_tokens=1))
    drive(sched, 2)  # its 10 cells stay as a cached prefix
    sched.add(make_seq(prompt=list(range(300, 330)), rid="a", max_tokens=1000))
    drive(sched, 1)
    sched.add(make_seq(prompt=list(range(400, 430)), rid="b", max_tokens=1000))
    out = sched.schedule()
    # b needs 30 + 4 beside a's 31: more than 60 even with the cached 10 dropped.
    assert out.admitted == [] and not any(isinstance(op, FreeKV) for op in out.kv_ops)


def test_preempted_sequence_recomputes_prompt_and_output_without_sampling_them() -> None:
    sched = make_scheduler(capacity=40, headroom=2)
    a = make_seq(10, rid="a", arrival=0.0, max_tokens=14)
    b = make_seq(10, rid="b", arrival=1.0, max_tokens=1000)
    sched.add(a)
    sched.add(b)
    preempted: list[Sequence] = []
    while not preempted:
        preempted = drive(sched, 1)
    assert preempted == [b] and b.status is SequenceStatus.WAITING
    assert b.seq_id is None and b.n_computed == 0 and b.preemptions == 1
    output_so_far = list(b.output_tokens)
    while a.finish_reason is None:
        drive(sched, 1)  # a ends at its max_tokens and frees its cells
    out = sched.schedule()
    assert b in sched.running and b not in out.admitted  # a return, not a new admission
    chunk = next(c for c in out.chunks if c.seq is b)
    assert chunk.tokens == b.prompt + output_so_far and chunk.start_pos == 0 and chunk.sample
    advanced = sched.update(out, {"b": 9})
    assert advanced == [b] and b.output_tokens == [*output_so_far, 9]
    out = sched.schedule()
    chunk = next(c for c in out.chunks if c.seq is b)
    assert chunk.tokens == [9] and chunk.start_pos == b.num_tokens - 1


def test_readmitted_sequence_copies_what_the_prefix_cache_still_holds() -> None:
    sched = make_scheduler(capacity=40, headroom=2, cache_slots=1)
    prompt = list(range(200, 210))
    b = make_seq(prompt=prompt, rid="b", arrival=1.0, max_tokens=1000)
    b.output_tokens = [7, 7, 7]  # hand-made: preempted after three tokens
    b.admitted_at = 0.0
    cached = make_seq(prompt=[*prompt, 7, 7], rid="cached", max_tokens=1)
    sched.add(cached)
    drive(sched, 2)  # its prompt (and b's first 12 tokens) stay as a cached prefix
    sched.add(b)
    out = sched.schedule()
    chunk = next(c for c in out.chunks if c.seq is b)
    assert chunk.start_pos == 12 and chunk.tokens == [7] and chunk.sample


def test_a_sequence_preempted_max_times_is_not_preempted_again() -> None:
    sched = make_scheduler(capacity=40, headroom=2, max_preemptions=1)
    a = make_seq(10, rid="a", arrival=0.0, max_tokens=1000)
    b = make_seq(10, rid="b", arrival=1.0, max_tokens=20)
    b.preemptions = 1  # hand-made: it has been preempted as often as allowed
    sched.add(a)
    sched.add(b)
    preempted: list[Sequence] = []
    while not preempted:
        preempted = drive(sched, 1)
    assert preempted == [a]  # b is newer, but it has had its share


def test_sequence_at_its_preemption_bound_waits_for_room_to_finish() -> None:
    sched = make_scheduler(capacity=60, headroom=2, max_preemptions=1)
    a = make_seq(10, rid="a", arrival=0.0, max_tokens=20)
    b = make_seq(10, rid="b", arrival=1.0, max_tokens=40)
    c = make_seq(10, rid="c", arrival=2.0, max_tokens=1000)
    a.preemptions = b.preemptions = 1  # hand-made: preempted as often as allowed
    for seq in (a, b, c):
        sched.add(seq)
    out = sched.schedule()
    # a and b could not both reach max_tokens in 60 cells; c, preemptable, does not wait.
    assert out.admitted == [a, c] and b in sched.waiting
    sched.update(out, {"a": 7, "c": 7})
    preempted = drive(sched, 80)
    assert a.finish_reason is FinishReason.LENGTH and len(a.output_tokens) == 20
    assert len(b.output_tokens) == 40 and b.preemptions == 1  # c made way for it
    assert c in preempted


def test_lone_sequence_that_fills_the_cache_ends_with_length() -> None:
    sched = make_scheduler(capacity=30, headroom=2)
    a = make_seq(10, rid="a", max_tokens=1000)
    sched.add(a)
    for _ in range(40):
        out = sched.schedule()
        assert not out.preempted
        if a in out.finished:
            break
        sched.update(out, {c.seq.request_id: 7 for c in out.chunks if c.sample})
    assert a.finish_reason is FinishReason.LENGTH
    assert a.num_tokens == 31  # 30 cells computed, and the last token it sampled
    assert sched.cells_in_use == 0 and not sched.running


def test_prompt_that_cannot_fit_even_alone_is_refused_naming_the_cache_size() -> None:
    sched = make_scheduler(capacity=30)
    a = make_seq(40, rid="a")
    sched.add(a)
    out = sched.schedule()
    assert out.finished == [a] and a.finish_reason is FinishReason.ERROR
    assert a.error is not None and "30" in a.error and "40" in a.error


def test_crowded_cache_finishes_every_request_within_the_preemption_bound() -> None:
    sched = make_scheduler(batch=8, capacity=120, headroom=4, max_preemptions=2, cache_slots=2)
    seqs = [make_seq(8 + i, rid=f"s{i}", arrival=float(i), max_tokens=40) for i in range(8)]
    for seq in seqs:
        sched.add(seq)
    for _ in range(2000):
        if not sched.has_work:
            break
        drive(sched, 1)
    assert not sched.has_work
    assert all(s.status is SequenceStatus.FINISHED for s in seqs)
    assert max(s.preemptions for s in seqs) <= 2 and sched.preemptions > 0
    assert [len(s.output_tokens) for s in seqs] == [40] * 8  # none was cut short


def test_cached_prefix_it_would_copy_is_dropped_when_keeping_it_leaves_no_room() -> None:
    sched = make_scheduler(capacity=60, headroom=4, cache_slots=2)
    sched.add(make_seq(prompt=list(range(500, 550)), rid="cached", max_tokens=1))
    drive(sched, 2)  # 50 cells kept as a cached prefix
    seq = make_seq(prompt=[*range(500, 505), *range(600, 640)], rid="new")  # shares 5
    sched.add(seq)
    out = sched.schedule()
    assert out.admitted == [seq] and seq.cached_tokens == 0


class FakeKV:
    """llama.cpp's cell sharing in miniature: each id holds a list of cells, in position
    order; a copy shares a prefix of the source's cells, a free drops an id's."""

    def __init__(self) -> None:
        self.held: dict[int, list[int]] = {}
        self._next = 0

    def run(self, out: SchedulerOutput) -> None:
        for op in out.kv_ops:
            if isinstance(op, CopyKV):
                self.held[op.dst] = self.held.get(op.src, [])[: op.n_tokens]
            else:
                self.held.pop(op.seq_id, None)
        for chunk in out.chunks:
            assert chunk.seq.seq_id is not None
            cells = self.held.setdefault(chunk.seq.seq_id, [])
            assert len(cells) == chunk.start_pos  # the chunk continues where its KV ends
            cells += range(self._next, self._next + len(chunk.tokens))
            self._next += len(chunk.tokens)

    @property
    def used(self) -> int:
        return len({cell for cells in self.held.values() for cell in cells})


@pytest.mark.parametrize("seed", range(20))
def test_random_traffic_is_counted_exactly_and_every_request_finishes(seed: int) -> None:
    rnd = random.Random(seed)
    clock = FakeClock()
    capacity = rnd.choice([60, 100, 200])
    sched = make_scheduler(
        queue=1000,
        batch=rnd.choice([2, 4, 8]),
        prefill=rnd.choice([8, 32, 64]),
        capacity=capacity,
        headroom=rnd.choice([0, 2, 16]),
        max_preemptions=rnd.choice([1, 2, 3]),
        cache_slots=rnd.choice([0, 2, 4]),
        share_min=rnd.choice([0, 4]),
        clock=clock,
    )
    kv = FakeKV()
    system = list(range(1000, 1030))  # a shared prefix, as a system prompt
    seqs: list[Sequence] = []
    for step in range(3000):
        if step < 200 and rnd.random() < 0.15:
            shared = system[: rnd.randint(0, 20)] if rnd.random() < 0.5 else []
            prompt = shared + [rnd.randint(1, 900) for _ in range(rnd.randint(1, 25))]
            seq = make_seq(
                prompt=prompt,
                rid=f"s{len(seqs)}",
                priority=rnd.choice(list(Priority)),
                arrival=clock.now,
                max_tokens=rnd.randint(1, capacity - len(prompt)),  # each fits alone
            )
            sched.add(seq)
            seqs.append(seq)
        if seqs and rnd.random() < 0.02:
            sched.abort(rnd.choice(seqs).request_id)
        out = sched.schedule()
        kv.run(out)
        assert kv.used == sched.cells_in_use <= capacity
        sampled = {c.seq.request_id: rnd.randint(1, 900) for c in out.chunks if c.sample}
        for seq in sched.update(out, sampled):
            if len(seq.output_tokens) >= seq.request.params.max_tokens:
                sched.finish(seq, FinishReason.LENGTH)
        clock.now += 0.01
        if step >= 200 and not sched.has_work:
            break
    assert not sched.has_work
    assert all(s.preemptions <= sched.max_preemptions for s in seqs)
    for seq in seqs:  # none was cut short: each fits alone
        assert seq.cancelled or len(seq.output_tokens) == seq.request.params.max_tokens


def test_a_request_that_asks_for_a_pin_leaves_its_prompt_pinned() -> None:
    clock = FakeClock()
    sched = make_scheduler(cache_slots=2, clock=clock)
    assert sched._cache is not None
    sched._cache._max_pins = 1
    head = list(range(1, 21))
    warm = make_seq(prompt=[*head, 900], rid="warm", max_tokens=1)
    warm.request.pin_prefix = "support:shop:persona"
    sched.add(warm)
    drive(sched, 3)
    assert list(sched._cache.pins) == ["support:shop:persona"]
    pinned = sched._cache.entries[0]
    assert pinned.pinned and pinned.tokens == (*head, 900)  # the prompt, not its answer
    for i in range(6):  # other finished prompts come and go
        other = make_seq(prompt=list(range(300 + 40 * i, 330 + 40 * i)), rid=f"o{i}", max_tokens=1)
        sched.add(other)
        drive(sched, 3)
    again = make_seq(prompt=[*head, 901, 902], rid="turn")
    sched.add(again)
    sched.schedule()
    assert again.cached_tokens == 20
