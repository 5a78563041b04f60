"""Speculative steps in the scheduler: drafts planned, verified runs settled, cells exact."""

from __future__ import annotations

import pytest

from luodi.engine.llamacpp.kv_cache import SeqIdPool, TrimKV
from luodi.engine.llamacpp.scheduler import Scheduler, SchedulerOutput, Speculation
from luodi.engine.llamacpp.sequence import Sequence
from luodi.engine.types import GenerationRequest, SamplingParams

# A prompt that repeats itself: after "1 2 3 4" it has seen "5 6 7 8 9 10".
PROMPT = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 50, 1, 2, 3, 4]


def make_seq(rid: str, prompt: list[int] | None = None, **params: object) -> Sequence:
    req = GenerationRequest(list(prompt or PROMPT), SamplingParams(**params))  # type: ignore[arg-type]
    req.request_id = rid
    return Sequence(req)


def make_scheduler(
    *,
    batch: int = 4,
    capacity: int = 4096,
    step_tokens: int = 2048,
    max_batch: int = 2,
    fixed: float = 1e6,
) -> Scheduler:
    """``fixed``: a step's fixed cost in tokens; huge (a GPU's) makes every draft pay."""
    return Scheduler(
        max_batch_size=batch,
        prefill_chunk=64,
        kv_capacity=capacity,
        max_queue=16,
        seq_ids=SeqIdPool(range(batch)),
        speculation=Speculation(
            num_tokens=4, ngram_min=2, ngram_max=3, max_batch=max_batch, fixed_tokens=fixed
        ),
        max_step_tokens=step_tokens,
    )


def prefill(sched: Scheduler, first_token: int = 5) -> SchedulerOutput:
    out = sched.schedule()
    sched.update(out, {c.seq.request_id: first_token for c in out.chunks if c.sample})
    return out


def test_a_decoding_sequence_gets_the_tokens_its_context_predicts() -> None:
    sched = make_scheduler()
    seq = make_seq("a", max_tokens=64)
    sched.add(seq)
    prefill(sched)  # output [5]: the context now ends "3 4 5"
    out = sched.schedule()
    (chunk,) = out.chunks
    assert chunk.tokens == [5, 6, 7, 8, 9] and chunk.draft == 4
    assert chunk.start_pos == len(PROMPT)
    assert sched.cells_in_use == len(PROMPT) + 5


def test_an_agreed_prefix_is_kept_and_the_rest_of_the_draft_given_back() -> None:
    sched = make_scheduler()
    seq = make_seq("a", max_tokens=64)
    sched.add(seq)
    prefill(sched)
    out = sched.schedule()
    # The model agreed with 6 and 7, then drew 42 where the draft said 8.
    advanced = sched.update(out, {"a": [6, 7, 42]})
    assert advanced == [seq]
    assert seq.output_tokens == [5, 6, 7, 42]
    # KV holds the prompt, 5, 6, 7; 42 is computed next step.
    assert seq.n_computed == len(PROMPT) + 3
    nxt = sched.schedule()
    assert TrimKV(seq.seq_id or 0, len(PROMPT) + 3) in nxt.kv_ops
    assert nxt.chunks[0].tokens[0] == 42 and nxt.chunks[0].start_pos == len(PROMPT) + 3
    assert sched.cells_in_use == len(PROMPT) + 3 + len(nxt.chunks[0].tokens)
    assert (seq.drafted_tokens, seq.accepted_tokens) == (4, 2)


def test_a_run_that_ends_early_takes_its_later_tokens_back() -> None:
    sched = make_scheduler()
    seq = make_seq("a", max_tokens=64)
    sched.add(seq)
    prefill(sched)
    out = sched.schedule()
    sched.update(out, {"a": [6, 7, 8, 9, 10]})  # the whole draft, and the next token
    assert seq.n_computed == len(PROMPT) + 5
    # The engine finds a stop string at 7: 8, 9 and 10 never reach the client.
    sched.rewind(seq, 3)
    assert seq.output_tokens == [5, 6, 7]
    assert seq.n_computed == len(PROMPT) + 2
    assert sched.cells_in_use == len(PROMPT) + 2


def test_drafts_never_run_past_max_tokens() -> None:
    sched = make_scheduler()
    seq = make_seq("a", max_tokens=3)
    sched.add(seq)
    prefill(sched)  # one output token; two to go: a draft of one, plus the model's own
    (chunk,) = sched.schedule().chunks
    assert chunk.draft == 1


def test_no_drafts_when_more_sequences_decode_than_speculation_allows() -> None:
    sched = make_scheduler(max_batch=2)
    for rid in "abc":
        sched.add(make_seq(rid, max_tokens=64))
    prefill(sched)
    assert all(c.draft == 0 for c in sched.schedule().chunks)


def test_a_request_may_opt_out() -> None:
    sched = make_scheduler()
    sched.add(make_seq("a", max_tokens=64, speculative=False))
    prefill(sched)
    assert sched.schedule().chunks[0].draft == 0


def test_drafts_take_only_spare_cells_and_batch_room() -> None:
    sched = make_scheduler(capacity=len(PROMPT) + 3)
    sched.add(make_seq("a", max_tokens=3))
    prefill(sched)
    (chunk,) = sched.schedule().chunks
    assert chunk.draft == 1  # max_tokens allows one; the cache would allow two
    sched = make_scheduler(capacity=len(PROMPT) + 2)
    sched.add(make_seq("a", max_tokens=64))
    prefill(sched)
    (chunk,) = sched.schedule().chunks
    assert chunk.draft == 1  # one spare cell beside the real token
    assert sched.preemptions == 0


def agree(sched: Scheduler, seq: Sequence) -> int:
    """One step where the model continues the repeating prompt (so it agrees with every
    draft the prompt proposes); returns the step's draft length."""
    out = sched.schedule()
    (chunk,) = out.chunks
    n = seq.num_tokens
    sched.update(
        out, {seq.request_id: [PROMPT[(n + i) % len(PROMPT)] for i in range(chunk.draft + 1)]}
    )
    return chunk.draft


def test_on_a_cpu_a_fresh_sequence_drafts_little_and_more_once_drafts_hold() -> None:
    # A step costs two tokens beyond its own: one draft token at even odds pays, a
    # second does not. Accepted drafts raise the odds, and with them the draft length.
    sched = make_scheduler(fixed=2.0)
    seq = make_seq("a", prompt=PROMPT * 3, max_tokens=200)
    sched.add(seq)
    prefill(sched, first_token=PROMPT[0])
    lengths = [agree(sched, seq) for _ in range(8)]
    assert lengths[0] == 1
    assert lengths[-1] == 4  # the most allowed
    assert lengths == sorted(lengths)
    assert seq.draft_acceptance > 0.8


def test_drafts_that_miss_stop_then_are_tried_again_as_the_misses_fade() -> None:
    sched = make_scheduler(fixed=2.0)
    seq = make_seq("a", prompt=PROMPT * 3, max_tokens=400)
    sched.add(seq)
    prefill(sched, first_token=PROMPT[0])
    out = sched.schedule()
    assert out.chunks[0].draft == 1
    sched.update(out, {"a": [PROMPT[seq.num_tokens % len(PROMPT)]]})  # rejected
    assert seq.draft_rejects == 1.0 and seq.draft_acceptance == pytest.approx(1 / 3)
    seq.draft_rejects = 3.0  # as after three misses in a row
    waited = 0
    while agree(sched, seq) == 0:  # plain steps: the misses fade
        waited += 1
        assert waited < 40
    assert waited >= 5


def test_a_large_batch_at_even_odds_drafts_nothing() -> None:
    sched = make_scheduler(fixed=2.0, batch=8, max_batch=8)
    for rid in "abcdefgh":
        sched.add(make_seq(rid, max_tokens=64))
    prefill(sched)
    prefill(sched)
    out = sched.schedule()
    assert len(out.chunks) == 8 and out.num_decode == 8
    assert all(c.draft == 0 for c in out.chunks)


def test_the_step_cost_fit_recovers_the_fixed_part() -> None:
    sched = Scheduler(
        max_batch_size=1,
        prefill_chunk=16,
        kv_capacity=64,
        max_queue=1,
        seq_ids=SeqIdPool([0]),
        speculation=Speculation(),
    )
    assert sched.step_cost.fixed_tokens == 2.0  # the prior, until steps are measured
    for n in (1, 2, 5, 9, 3, 1, 7) * 10:
        sched.observe_step(n, 0.010 + 0.004 * n)  # fixed 10 ms, 4 ms a token: 2.5 tokens
    assert sched.step_cost.fixed_tokens == pytest.approx(2.5, rel=1e-6)
