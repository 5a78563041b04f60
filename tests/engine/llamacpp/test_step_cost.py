"""The step-cost model and the prompt budget it gives steps that carry decodes."""

from __future__ import annotations

import pytest

from luodi.engine.llamacpp.kv_cache import SeqIdPool
from luodi.engine.llamacpp.scheduler import MIN_PREFILL, Scheduler
from luodi.engine.llamacpp.sequence import Sequence
from luodi.engine.llamacpp.step_cost import StepCost
from luodi.engine.types import GenerationRequest, SamplingParams


def teach(cost: StepCost | Scheduler) -> None:
    """Steps of a device where a step costs 10 ms + 4 ms a decode + 0.25 ms a prompt token."""
    observe = cost.observe_step if isinstance(cost, Scheduler) else cost.observe
    for n in (1, 2, 5, 9, 3, 1, 7) * 10:
        observe(n, 0.010 + 0.004 * n)
    for n, p in ((4, 100), (8, 300), (2, 50)) * 10:
        observe(n, 0.010 + 0.004 * n + 0.00025 * p, n_prompt=p)


def test_the_fit_recovers_fixed_cost_and_prompt_share() -> None:
    cost = StepCost()
    assert (cost.fixed_tokens, cost.prefill_share) == (2.0, 0.5)  # priors
    teach(cost)
    assert cost.fixed_tokens == pytest.approx(2.5, rel=1e-6)
    assert cost.prefill_share == pytest.approx(0.0625, rel=1e-6)
    # 20 decodes take 90 ms; a quarter more is 22.5 ms: 90 prompt tokens.
    assert cost.prefill_budget(20, 0.25) == pytest.approx(90.0, rel=1e-6)


def test_a_floor_in_seconds_lets_short_steps_carry_more() -> None:
    cost = StepCost()
    teach(cost)
    # 2 decodes take 18 ms: a quarter is 4.5 ms (18 prompt tokens); the 10 ms floor, 40.
    assert cost.prefill_budget(2, 0.25) == pytest.approx(18.0, rel=1e-6)
    assert cost.prefill_budget(2, 0.25, floor_s=0.010) == pytest.approx(40.0, rel=1e-6)
    assert cost.prefill_budget(20, 0.25, floor_s=0.010) == pytest.approx(90.0, rel=1e-6)


def test_noise_without_spread_keeps_the_priors() -> None:
    cost = StepCost()
    for _ in range(50):
        cost.observe(4, 0.02)  # every step the same size: nothing to separate
    assert cost.fixed_tokens == 2.0


def make_seq(rid: str, n_prompt: int) -> Sequence:
    req = GenerationRequest(list(range(1, n_prompt + 1)), SamplingParams(max_tokens=500))
    req.request_id = rid
    return Sequence(req)


def scheduler(slack: float | None) -> Scheduler:
    return Scheduler(
        max_batch_size=32,
        prefill_chunk=512,
        kv_capacity=65536,
        max_queue=64,
        seq_ids=SeqIdPool(range(32)),
        step_slack=slack,
    )


def steps_to_first_token(sched: Scheduler, newcomer: Sequence) -> tuple[int, list[int]]:
    sched.add(newcomer)
    steps = 0
    carried: list[int] = []
    while not newcomer.output_tokens:
        out = sched.schedule()
        carried.append(sum(len(c.tokens) for c in out.chunks if c.seq is newcomer))
        sched.update(out, {c.seq.request_id: 7 for c in out.chunks if c.sample})
        steps += 1
    return steps, carried


@pytest.mark.parametrize("slack", [None, 0.25])
def test_prompts_ride_along_with_decodes_within_the_slack(slack: float | None) -> None:
    sched = scheduler(slack)
    teach(sched)
    for i in range(20):
        sched.add(make_seq(f"d{i}", 8))
    out = sched.schedule()  # nothing decodes yet: prompts go at full speed
    assert out.num_tokens == 160
    sched.update(out, {c.seq.request_id: 7 for c in out.chunks if c.sample})
    steps, carried = steps_to_first_token(sched, make_seq("long", 1000))
    if slack is None:
        assert carried[0] == 512 and steps == 2
    else:
        assert max(carried) == 90  # see test_the_fit_recovers_fixed_cost_and_prompt_share
        assert steps == 12


def test_a_step_always_carries_some_prompt() -> None:
    sched = scheduler(0.0)
    sched.add(make_seq("a", 8))
    out = sched.schedule()
    sched.update(out, {"a": 7})
    _, carried = steps_to_first_token(sched, make_seq("b", 100))
    assert max(carried) == MIN_PREFILL
