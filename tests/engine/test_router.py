"""The router over stand-in vLLM replicas and a stand-in cloud, with faults injected.

Every backend here is a real HTTP server on 127.0.0.1 (see ``standin.py``); a test
needs only its URL, so the same tests can run against real luodi processes.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from standin import StandIn

from luodi.config.routing import BackendKind, RoutingSettings
from luodi.engine.metrics import EngineMetrics
from luodi.engine.router import Router, residency_required
from luodi.engine.types import (
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    ModelInfo,
    SamplingParams,
    Usage,
)
from luodi.engine.upstream import UpstreamRejectedError
from luodi.errors import ConfigError, ServiceUnavailableError

MakeStandIn = Callable[[str], StandIn]
MODEL = "qwen3-14b"


def vllm(name: str, server: StandIn, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "vllm",
        "url": server.url,
        "format": "awq",
        "retry_backoff_s": 0.01,
        "max_retries": 0,
        "read_timeout_s": 5.0,
        **extra,
    }


def cloud(server: StandIn, **extra: Any) -> dict[str, Any]:
    return {
        "name": "dashscope",
        "kind": "openai",
        "url": server.url,
        "location": "cloud",
        "role": "overflow",
        "upstream_model": "qwen-plus",
        "max_retries": 0,
        **extra,
    }


def routing(mode: str, *backends: dict[str, Any], **extra: Any) -> RoutingSettings:
    return RoutingSettings.model_validate(
        {"mode": mode, "models": {MODEL: {"backends": list(backends)}}, **extra}
    )


class MaskIdNumbers:
    """A stand-in for the gateway's PII stage: masks 18-digit PRC ID numbers."""

    pattern = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")

    def protect(self, request: GenerationRequest) -> GenerationRequest:
        messages = [
            {**m, "content": self.pattern.sub("<ID_CARD>", m["content"])}
            for m in request.messages or []
        ]
        return replace(request, messages=messages, failovers=list(request.failovers))


@asynccontextmanager
async def started(settings: RoutingSettings, **kwargs: Any) -> AsyncIterator[Router]:
    router = Router.from_settings(settings, **kwargs)
    await router.start(health_loop=False)
    try:
        yield router
    finally:
        await router.stop()


def chat(text: str = "hello there", max_tokens: int = 16) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": text}],
        params=SamplingParams(max_tokens=max_tokens),
        model=MODEL,
    )


async def run(router: Router, request: GenerationRequest) -> list[GenerationEvent]:
    return [e async for e in router.engine(MODEL).generate(request)]


def text_of(events: list[GenerationEvent]) -> str:
    return "".join(e.text for e in events)


# -- balancing and failover ---------------------------------------------------------


async def test_concurrent_requests_spread_over_replicas(standin: MakeStandIn) -> None:
    a, b = standin("a"), standin("b")
    for server in (a, b):
        server.faults.token_delay_s = 0.05
    async with started(routing("private", vllm("a", a), vllm("b", b))) as router:
        await asyncio.gather(*(run(router, chat("one two three")) for _ in range(4)))
    assert len(a.received) == 2 and len(b.received) == 2


async def test_replica_dropping_before_first_token_is_retried_on_another(
    standin: MakeStandIn,
) -> None:
    a, b = standin("a"), standin("b")
    a.faults.drop_after_tokens = 0
    async with started(routing("private", vllm("a", a), vllm("b", b))) as router:
        request = chat("hello")
        events = await run(router, request)
    assert text_of(events) == "[b] hello "
    assert events[-1].finish_reason is FinishReason.STOP
    assert request.backend == "b"
    assert len(a.received) == 1


async def test_replica_dying_after_first_token_ends_with_a_clean_error(
    standin: MakeStandIn,
) -> None:
    a, b = standin("a"), standin("b")
    a.faults.drop_after_tokens = 2
    async with started(routing("private", vllm("a", a), vllm("b", b))) as router:
        events = await run(router, chat("one two three"))
    assert text_of(events) == "[a] one "
    assert events[-1].finish_reason is FinishReason.ERROR and events[-1].error
    assert b.received == []


async def test_5xx_replica_is_taken_out_and_requests_go_elsewhere(standin: MakeStandIn) -> None:
    a, b = standin("a"), standin("b")
    a.faults.fail_status = 500
    settings = routing("private", vllm("a", a), vllm("b", b), unhealthy_after=1)
    async with started(settings) as router:
        first = await run(router, chat("x"))
        second = await run(router, chat("y"))
        assert router.health(MODEL)["backends"]["a"]["status"] == "down"  # type: ignore[index]
    assert text_of(first) == "[b] x " and text_of(second) == "[b] y "
    assert len(a.received) == 1


async def test_4xx_is_returned_without_trying_another_replica(standin: MakeStandIn) -> None:
    a, b = standin("a"), standin("b")
    a.faults.fail_status = 400
    async with started(routing("private", vllm("a", a), vllm("b", b))) as router:
        with pytest.raises(UpstreamRejectedError):
            await run(router, chat())
    assert b.received == []


async def test_down_replica_is_probed_out_and_back_in(standin: MakeStandIn) -> None:
    a, b = standin("a"), standin("b")
    settings = routing("private", vllm("a", a), vllm("b", b), unhealthy_after=2)
    async with started(settings) as router:
        a.down()
        await router.check_health()
        await router.check_health()
        assert router.health(MODEL)["backends"]["a"]["status"] == "down"  # type: ignore[index]
        await asyncio.gather(*(run(router, chat()) for _ in range(3)))
        assert len(b.received) == 3
        a.up()
        await router.check_health()
        assert router.health(MODEL)["backends"]["a"]["status"] == "ok"  # type: ignore[index]
        await asyncio.gather(*(run(router, chat()) for _ in range(2)))
    assert len(a.received) >= 1


async def test_health_loop_brings_a_recovered_replica_back(standin: MakeStandIn) -> None:
    a = standin("a")
    a.down()
    settings = routing("private", vllm("a", a), unhealthy_after=1, health_interval_s=0.05)
    router = Router.from_settings(settings)
    await router.start()
    try:
        assert router.health(MODEL)["status"] == "down"
        with pytest.raises(ServiceUnavailableError):
            await run(router, chat())
        a.up()
        deadline = time.monotonic() + 5
        while router.health(MODEL)["status"] != "ok":  # bounded wait on the probe loop
            assert time.monotonic() < deadline, "replica never came back"
            await asyncio.sleep(0.02)
        assert text_of(await run(router, chat("back"))) == "[a] back "
    finally:
        await router.stop()


async def test_every_replica_down_is_a_503_naming_the_failures(standin: MakeStandIn) -> None:
    a = standin("a")
    a.faults.drop_after_tokens = 0
    async with started(routing("private", vllm("a", a))) as router:
        with pytest.raises(ServiceUnavailableError, match="a: upstream a failed"):
            await run(router, chat())


async def test_closing_the_routed_stream_closes_the_upstream(standin: MakeStandIn) -> None:
    a = standin("a")
    a.faults.token_delay_s = 0.05
    async with started(routing("private", vllm("a", a))) as router:
        stream = router.engine(MODEL).generate(chat("a b c d e f g h", max_tokens=64))
        async for _ in stream:
            break
        await stream.aclose()  # type: ignore[attr-defined]
        assert await asyncio.to_thread(a.wait_disconnect, 5.0)
        assert router.backends[MODEL][0].outstanding == 0


# -- hybrid and api modes -----------------------------------------------------------


async def test_hybrid_overflows_to_cloud_when_local_is_saturated(standin: MakeStandIn) -> None:
    local, sky = standin("local"), standin("cloud")
    local.faults.token_delay_s = 0.1
    settings = routing(
        "hybrid", vllm("local", local, max_outstanding=1), cloud(sky), overflow_queue_wait_ms=20
    )
    metrics = EngineMetrics(CollectorRegistry())
    async with started(settings, guard=MaskIdNumbers(), metrics=metrics) as router:
        engine = router.engine(MODEL)
        busy = engine.generate(chat("a b c d"))
        assert (await anext(busy)).text  # type: ignore[call-overload]
        overflowed = chat("x")
        events = await run(router, overflowed)
        rest = [e async for e in busy]
    assert rest[-1].finish_reason is FinishReason.STOP
    assert text_of(events) == "[cloud] x "
    assert overflowed.backend == "dashscope"
    router_load = {"backend": "router", "model": MODEL}
    assert metrics.registry.get_sample_value("luodi_num_requests_waiting", router_load) == 0
    assert metrics.registry.get_sample_value("luodi_num_requests_running", router_load) == 0
    assert sky.received[0]["model"] == "qwen-plus"


async def test_hybrid_overflows_while_local_first_token_is_slow(standin: MakeStandIn) -> None:
    local, sky = standin("local"), standin("cloud")
    local.faults.first_token_delay_s = 0.15
    settings = routing("hybrid", vllm("local", local), cloud(sky), overflow_ttft_ms=100)
    async with started(settings, guard=MaskIdNumbers()) as router:
        first, second = chat(), chat()
        await run(router, first)
        await run(router, second)
    assert first.backend == "local"
    assert second.backend == "dashscope"


async def test_hybrid_uses_cloud_when_local_is_down(standin: MakeStandIn) -> None:
    local, sky = standin("local"), standin("cloud")
    local.down()
    async with started(
        routing("hybrid", vllm("local", local), cloud(sky)), guard=MaskIdNumbers()
    ) as router:
        events = await run(router, chat("hi"))
    assert text_of(events) == "[cloud] hi "


async def test_hybrid_skips_a_cloud_backend_above_max_rtt(standin: MakeStandIn) -> None:
    local, sky = standin("local"), standin("cloud")
    local.down()
    sky.faults.probe_delay_s = 0.08
    settings = routing("hybrid", vllm("local", local), cloud(sky), max_rtt_ms=50, unhealthy_after=1)
    async with started(settings, guard=MaskIdNumbers()) as router:
        state = router.health(MODEL)
        assert state["status"] == "down"
        assert state["backends"]["dashscope"]["rtt_ms"] >= 80  # type: ignore[index]
        with pytest.raises(ServiceUnavailableError):
            await run(router, chat())
    assert sky.received == []


async def test_id_number_reaches_the_cloud_masked(standin: MakeStandIn) -> None:
    local, sky = standin("local"), standin("cloud")
    local.down()
    prompt = "我的身份证号是11010519491231002X，请帮我查询"
    async with started(
        routing("hybrid", vllm("local", local), cloud(sky)), guard=MaskIdNumbers()
    ) as router:
        request = chat(prompt)
        await run(router, request)
    sent = sky.received[0]["messages"][0]["content"]
    assert "11010519491231002X" not in sent and "<ID_CARD>" in sent
    assert request.backend == "dashscope"
    assert request.messages is not None and "11010519491231002X" in request.messages[0]["content"]


async def test_cloud_backend_without_a_pii_stage_is_refused(standin: MakeStandIn) -> None:
    sky = standin("cloud")
    settings = routing("api", cloud(sky, role="primary"))
    async with started(settings) as router:
        with pytest.raises(ServiceUnavailableError, match="unprotected"):
            await run(router, chat())
        protected = chat()
        protected.pii_protected = True
        assert text_of(await run(router, protected)) == "[cloud] hello there "
    assert len(sky.received) == 1


async def test_api_mode_serves_from_the_cloud(standin: MakeStandIn) -> None:
    sky = standin("cloud")
    metrics = EngineMetrics(CollectorRegistry())
    settings = routing("api", cloud(sky, role="primary"))
    async with started(settings, guard=MaskIdNumbers(), metrics=metrics) as router:
        events = await run(router, chat("hi"))
        assert router.may_leave_premises(MODEL)
    assert events[-1].finish_reason is FinishReason.STOP
    labels = {"backend": "dashscope", "model": MODEL}
    assert metrics.registry.get_sample_value("luodi_backend_up", labels) == 1
    assert metrics.registry.get_sample_value("luodi_time_to_first_token_seconds_count", labels)


# -- embedded backends, health view, config -----------------------------------------


class FakeLocalEngine:
    """An in-process engine standing in for the embedded llama.cpp one."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = False

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, context_length=4096)

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        yield GenerationEvent(request.request_id, text="local")
        yield GenerationEvent(
            request.request_id, finish_reason=FinishReason.STOP, usage=Usage(1, 1)
        )

    def abort(self, request_id: str) -> None:
        pass

    def health(self) -> dict[str, object]:
        return {"status": "ok" if self.started else "down"}


async def test_embedded_backend_comes_from_the_callers_factory() -> None:
    settings = routing("private", {"name": "embedded", "kind": "llamacpp", "format": "gguf"})
    with pytest.raises(ConfigError, match="no engine factory"):
        Router.from_settings(settings)
    factories = {BackendKind.LLAMACPP: lambda model, backend, route: FakeLocalEngine(model)}
    async with started(settings, factories=factories) as router:
        events = await run(router, chat())
        assert text_of(events) == "local"
        assert router.health(MODEL)["status"] == "ok"
        assert not router.may_leave_premises(MODEL)


async def test_health_shows_every_backend_with_role_and_location(standin: MakeStandIn) -> None:
    local, sky = standin("local"), standin("cloud")
    settings = routing("hybrid", vllm("local", local), cloud(sky))
    async with started(settings, guard=MaskIdNumbers()) as router:
        state = router.engine(MODEL).health()
        info = router.engine(MODEL).info
    backends = state["backends"]
    assert state["mode"] == "hybrid" and state["status"] == "ok"
    assert backends["local"]["location"] == "on-prem"  # type: ignore[index]
    assert backends["dashscope"]["role"] == "overflow"  # type: ignore[index]
    assert info.name == MODEL and info.backend == "router:hybrid"
    assert residency_required(router.backends[MODEL][1])
    assert not residency_required(router.backends[MODEL][0])


CLOUD = {"name": "c", "kind": "openai", "url": "http://x/v1", "location": "cloud"}
LOCAL = {"name": "l", "kind": "vllm", "url": "http://y/v1", "format": "awq"}


@pytest.mark.parametrize(
    ("mode", "backends", "message"),
    [
        ("private", [LOCAL, CLOUD], "not allowed in private mode"),
        ("api", [LOCAL, CLOUD], "api mode serves from cloud backends only"),
        ("hybrid", [CLOUD], "hybrid mode needs an on-prem backend"),
        ("private", [{**LOCAL, "format": "gguf"}], "gguf on vllm"),
        ("private", [{"name": "e", "kind": "llamacpp", "format": "awq"}], "needs vllm or sglang"),
        ("private", [{"name": "v", "kind": "vllm"}], "needs a url"),
        ("private", [LOCAL, LOCAL], "backend names repeat"),
        ("private", [{**LOCAL, "role": "fallback"}], "no backend has role primary"),
        ("private", [{**LOCAL, "api_key": "k", "api_key_env": "K"}], "not both"),
    ],
)
def test_impossible_routing_is_a_config_error(
    mode: str, backends: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        RoutingSettings.model_validate({"mode": mode, "models": {MODEL: {"backends": backends}}})


def test_serve_mode_override_is_checked_again() -> None:
    settings = RoutingSettings.model_validate(
        {"mode": "hybrid", "models": {MODEL: {"backends": [LOCAL, CLOUD]}}}
    )
    with pytest.raises(ValidationError, match="private mode"):
        settings.with_mode("private")
    assert settings.with_mode("hybrid").mode.value == "hybrid"


def test_api_key_can_come_from_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-env")
    settings = RoutingSettings.model_validate(
        {
            "mode": "api",
            "models": {MODEL: {"backends": [{**CLOUD, "api_key_env": "DASHSCOPE_API_KEY"}]}},
        }
    )
    assert settings.models[MODEL].backends[0].resolved_api_key() == "sk-env"
