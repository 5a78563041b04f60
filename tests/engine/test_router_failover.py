"""Failover as a scaled-out deployment meets it: replicas in processes of their own,
killed with SIGKILL while idle or mid-answer (issue 23's findings, one test each)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from standin import Faults, ResettingServer, StandInProcess
from test_router import MODEL, chat, routing, run, started, text_of, vllm

from luodi.engine.router import Router
from luodi.engine.types import FinishReason
from luodi.errors import ServiceUnavailableError
from tests.engine.llamacpp.test_engine import wait_until

MakeReplica = Callable[..., StandInProcess]


@pytest.fixture
def replica() -> Iterator[MakeReplica]:
    """Start stand-in replicas in child processes; every one is killed after the test."""
    started_: list[StandInProcess] = []

    def make(name: str, **faults: Any) -> StandInProcess:
        process = StandInProcess(name, faults=Faults(**faults))
        process.up()
        started_.append(process)
        return process

    yield make
    for process in started_:
        process.kill()


def backend(router: Router, name: str) -> Any:
    return next(b for b in router.backends[MODEL] if b.name == name)


async def settle_probes(router: Router) -> None:
    """Wait for the probes that failed requests started (they run at once)."""
    await asyncio.gather(*router._probes.values(), return_exceptions=True)


async def warm(router: Router, n: int = 4) -> None:
    """Leave kept-alive connections to every replica in the pool."""
    await asyncio.gather(*(run(router, chat(f"warm up {i}")) for i in range(n)))


async def test_first_request_after_an_idle_replica_is_killed_fails_over(
    replica: MakeReplica,
) -> None:
    a, b = replica("a"), replica("b")
    async with started(routing("private", vllm("a", a), vllm("b", b))) as router:
        await warm(router)
        a.kill()
        requests = [chat(f"after the kill {i}") for i in range(4)]
        answers = [await run(router, r) for r in requests]
        await settle_probes(router)
        assert not backend(router, "a").healthy
    assert all(events[-1].finish_reason is FinishReason.STOP for events in answers)
    assert all(text_of(events).startswith("[b]") for events in answers)
    # The failover is on the request, for its audit record.
    assert any("a:" in note for r in requests for note in r.failovers)


@pytest.mark.parametrize("replayable", [False, True], ids=["streamed", "buffered"])
async def test_connection_reset_before_the_response_fails_over(
    replica: MakeReplica, replayable: bool
) -> None:
    # httpx raises ReadError here, which once escaped the router as an HTTP 500.
    dead = ResettingServer()
    b = replica("b")
    try:
        settings = routing("private", vllm("a", dead, max_retries=1), vllm("b", b))
        async with started(settings) as router:
            backend(router, "a").healthy = True  # as if it died after its last probe
            probed = dead.resets
            request = chat("are you there")
            request.replayable = replayable
            events = await run(router, request)
            tries = dead.resets - probed
            await settle_probes(router)
            assert not backend(router, "a").healthy
    finally:
        dead.close()
    assert text_of(events).startswith("[b]")
    assert tries == 2  # the first try and one retry at once, on a fresh connection
    assert "dropped the connection" in request.failovers[0]


async def test_non_streaming_requests_on_a_dying_replica_are_replayed_elsewhere(
    replica: MakeReplica,
) -> None:
    a, b = replica("a", token_delay_s=0.5), replica("b", token_delay_s=0.05)
    async with started(routing("private", vllm("a", a), vllm("b", b))) as router:
        requests = [chat(f"question {i} has seven words in it") for i in range(8)]
        for request in requests:
            request.replayable = True
        tasks = [asyncio.create_task(run(router, r)) for r in requests]
        on_a = backend(router, "a")
        await wait_until(lambda: on_a.outstanding == 4)  # least-outstanding: half go to a
        await asyncio.sleep(0.6)  # a has sent each of them its first words
        a.kill()
        answers = await asyncio.gather(*tasks)
    for events in answers:
        assert events[-1].finish_reason is FinishReason.STOP
        # Whole answers, from b alone: nothing of a's partial answers leaks into them.
        assert text_of(events).startswith("[b]")
        assert text_of(events).count("[") == 1
    replayed = [r for r in requests if r.failovers]
    assert len(replayed) == 4
    assert all("mid-stream" in r.failovers[0] for r in replayed)


async def test_streamed_request_cut_mid_answer_is_not_replayed(replica: MakeReplica) -> None:
    a, b = replica("a", token_delay_s=0.3), replica("b")
    settings = routing("private", vllm("a", a), vllm("b", b, role="fallback"))
    async with started(settings) as router:
        stream = router.engine(MODEL).generate(chat("one two three four five six"))
        first = await anext(stream)
        a.kill()
        rest = [e async for e in stream]
    assert first.text.startswith("[a]")
    assert rest[-1].finish_reason is FinishReason.ERROR
    assert "mid-stream" in (rest[-1].error or "")


async def test_replay_budget_bounds_how_old_a_replayed_request_may_be(
    replica: MakeReplica,
) -> None:
    a, b = replica("a", token_delay_s=0.3), replica("b", token_delay_s=0.3)
    settings = routing("private", vllm("a", a), vllm("b", b), replay_budget_s=0.0)
    async with started(settings) as router:
        request = chat("one two three four five six")
        request.replayable = True
        task = asyncio.create_task(run(router, request))
        await wait_until(lambda: any(x.outstanding for x in router.backends[MODEL]))
        served = next(x.name for x in router.backends[MODEL] if x.outstanding)
        await asyncio.sleep(0.4)  # its first words are out
        (a if served == "a" else b).kill()
        with pytest.raises(ServiceUnavailableError, match="replay_budget_s") as info:
            await task
    assert info.value.headers().get("Retry-After")


@pytest.mark.parametrize("replayable", [False, True], ids=["streamed", "buffered"])
async def test_every_replica_killed_is_a_quick_503_with_retry_after(
    replica: MakeReplica, replayable: bool
) -> None:
    a, b = replica("a"), replica("b")
    # The shipped defaults: two retries per replica, backing off from 0.25 s.
    slow = {"max_retries": 2, "retry_backoff_s": 0.25}
    async with started(routing("private", vllm("a", a, **slow), vllm("b", b, **slow))) as router:
        await warm(router)
        a.kill()
        b.kill()
        request = chat("anyone there")
        request.replayable = replayable
        began = time.monotonic()
        with pytest.raises(ServiceUnavailableError) as info:
            await run(router, request)
        took = time.monotonic() - began
        second_began = time.monotonic()
        with pytest.raises(ServiceUnavailableError):
            await run(router, chat("still nobody"))
        second_took = time.monotonic() - second_began
    assert info.value.headers()["Retry-After"] == "1"
    # Stale connections are retried at once, refused ones not at all: no backoff sleeps.
    assert took < 0.25, took
    assert second_took < 0.25, second_took
