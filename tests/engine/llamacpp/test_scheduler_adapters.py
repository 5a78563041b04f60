"""The scheduler with LoRA adapters: one decode per adapter set, fairly, and no shared KV."""

from __future__ import annotations

from luodi.engine.llamacpp.kv_cache import CopyKV
from luodi.engine.types import FinishReason
from tests.engine.llamacpp.test_scheduler import make_scheduler, make_seq, run_step


def test_a_step_groups_chunks_by_adapter_and_never_mixes_them() -> None:
    sched = make_scheduler(batch=6)
    for i, adapter in enumerate([None, "terse", None, "verbose", "terse", None]):
        sched.add(make_seq(rid=f"r{i}"), adapter=adapter)
    out = sched.schedule()
    groups = out.groups
    assert len(groups) == 3
    assert sorted(len(g) for g in groups) == [1, 2, 3]
    for group in groups:
        assert len({c.adapter for c in group}) == 1
    assert sum(len(g) for g in groups) == len(out.chunks) == 6


def test_every_group_advances_every_step_and_the_first_group_rotates() -> None:
    sched = make_scheduler(batch=4)
    for i, adapter in enumerate([None, "terse", "verbose", None]):
        sched.add(make_seq(rid=f"r{i}"), adapter=adapter)
    firsts = []
    for _ in range(6):
        out = sched.schedule()
        groups = out.groups
        assert {g[0].adapter for g in groups} == {None, "terse", "verbose"}
        firsts.append(groups[0][0].adapter)
        sched.update(out, {c.seq.request_id: 7 for c in out.chunks if c.sample})
    assert firsts == [None, "terse", "verbose", None, "terse", "verbose"]


def test_without_adapters_there_is_one_group_in_the_chunks_order() -> None:
    sched = make_scheduler()
    for i in range(3):
        sched.add(make_seq(rid=f"r{i}"))
    out = sched.schedule()
    assert out.groups == [out.chunks]


def test_an_adapter_sequence_neither_borrows_nor_lends_prefix_kv() -> None:
    sched = make_scheduler(cache_slots=2)
    system = list(range(1, 41))
    base = make_seq(prompt=[*system, 900], rid="base")
    sched.add(base)
    run_step(sched)
    tuned = make_seq(prompt=[*system, 950], rid="tuned")
    sched.add(tuned, adapter="terse")
    out = sched.schedule()
    assert not any(isinstance(op, CopyKV) for op in out.kv_ops)  # computed under its adapter
    assert tuned.cached_tokens == 0
    sched.update(out, {c.seq.request_id: 7 for c in out.chunks if c.sample})
    later = make_seq(prompt=[*system, 960], rid="later")
    sched.add(later)
    out = sched.schedule()
    copies = [op for op in out.kv_ops if isinstance(op, CopyKV)]
    assert copies and all(op.src == base.seq_id for op in copies)  # from the base sequence


def test_a_finished_adapter_sequence_leaves_no_cached_prefix() -> None:
    sched = make_scheduler(cache_slots=2)
    prompt = list(range(1, 21))
    tuned = make_seq(prompt=prompt, rid="tuned")
    sched.add(tuned, adapter="terse")
    run_step(sched)
    sched.finish(tuned, FinishReason.STOP)
    out = sched.schedule()
    assert not any(isinstance(op, CopyKV) for op in out.kv_ops)
    assert sched.adapter_of(tuned) is None  # forgotten once it left
    base = make_seq(prompt=[*prompt, 5], rid="base")
    sched.add(base)
    sched.schedule()
    assert base.cached_tokens == 0


def test_in_batch_sharing_never_pairs_an_adapter_sequence_with_another_set() -> None:
    sched = make_scheduler(cache_slots=2, share_min=32)
    system = list(range(1, 41))
    base = make_seq(prompt=[*system, 900], rid="base")
    tuned = make_seq(prompt=[*system, 950], rid="tuned")
    sched.add(base)
    sched.add(tuned, adapter="terse")
    assert sched.schedule().admitted == [base, tuned]  # tuned does not wait to copy base
