"""The upstream engine against stand-in OpenAI servers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from standin import StandIn

from luodi.config.routing import BackendKind, BackendSettings
from luodi.engine.metrics import EngineMetrics
from luodi.engine.types import FinishReason, GenerationRequest, SamplingParams
from luodi.engine.upstream import (
    UpstreamEngine,
    UpstreamEvent,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)

MakeStandIn = Callable[[str], StandIn]


def backend(url: str, **overrides: Any) -> BackendSettings:
    base: dict[str, Any] = {
        "name": "vllm-0",
        "kind": BackendKind.VLLM,
        "url": url,
        "retry_backoff_s": 0.01,
        "read_timeout_s": 5.0,
        "connect_timeout_s": 1.0,
    }
    base.update(overrides)
    return BackendSettings(**base)


@asynccontextmanager
async def engine_for(
    url: str, metrics: EngineMetrics | None = None, **overrides: Any
) -> AsyncIterator[UpstreamEngine]:
    engine = UpstreamEngine(backend(url, **overrides), model="qwen3", metrics=metrics)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


def chat(text: str, max_tokens: int = 16, **options: Any) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": text}],
        chat_options=options,
        params=SamplingParams(max_tokens=max_tokens, temperature=0.0),
        model="qwen3",
    )


async def run(engine: UpstreamEngine, request: GenerationRequest) -> list[UpstreamEvent]:
    return [event async for event in engine.generate(request)]


async def test_chat_streams_text_and_ends_with_usage(standin: MakeStandIn) -> None:
    server = standin("vllm")
    async with engine_for(server.url) as engine:
        events = await run(engine, chat("hello there"))
    assert "".join(e.text for e in events) == "[vllm] hello there "
    assert all(not e.finished for e in events[:-1])
    last = events[-1]
    assert last.finish_reason is FinishReason.STOP
    assert last.usage is not None and last.usage.prompt_tokens == 2
    assert last.usage.completion_tokens == 3
    assert server.received[0]["stream_options"] == {"include_usage": True}


async def test_completion_prompt_is_sent_and_max_tokens_gives_length(
    standin: MakeStandIn,
) -> None:
    server = standin("vllm")
    request = GenerationRequest(prompt="one two three four", params=SamplingParams(max_tokens=2))
    async with engine_for(server.url) as engine:
        events = await run(engine, request)
    assert "".join(e.text for e in events) == "[vllm] one "
    assert events[-1].finish_reason is FinishReason.LENGTH
    assert server.received[0]["prompt"] == "one two three four"


async def test_reasoning_and_tool_call_deltas_come_through(standin: MakeStandIn) -> None:
    server = standin("vllm")
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    request = chat("find x", tools=tools, chat_template_kwargs={"enable_thinking": True})
    async with engine_for(server.url) as engine:
        events = await run(engine, request)
    assert "".join(e.reasoning for e in events) == "Let me think. Done."
    calls = [c for e in events for c in e.tool_calls]
    assert calls[0]["function"]["name"] == "lookup"
    assert "".join(c["function"]["arguments"] for c in calls) == '{"q": "x"}'
    assert events[-1].finish_reason is FinishReason.TOOL_CALLS
    assert server.received[0]["chat_template_kwargs"] == {"enable_thinking": True}
    assert server.received[0]["tools"] == tools


async def test_cloud_api_gets_only_standard_fields_and_thinking_top_level(
    standin: MakeStandIn,
) -> None:
    server = standin("cloud")
    request = chat("hi", chat_template_kwargs={"enable_thinking": False})
    request.params.top_k = 20
    async with engine_for(server.url, kind=BackendKind.OPENAI, name="dashscope") as engine:
        await run(engine, request)
    body = server.received[0]
    assert "top_k" not in body and "chat_template_kwargs" not in body
    assert body["enable_thinking"] is False


async def test_upstream_model_name_and_api_key_are_sent(standin: MakeStandIn) -> None:
    server = standin("cloud")
    async with engine_for(
        server.url, kind=BackendKind.OPENAI, upstream_model="qwen-plus", api_key="sk-test"
    ) as engine:
        await run(engine, chat("hi"))
        assert engine._client is not None
        assert engine._client.headers["Authorization"] == "Bearer sk-test"
    assert server.received[0]["model"] == "qwen-plus"


async def test_5xx_is_retried_until_the_upstream_recovers(standin: MakeStandIn) -> None:
    server = standin("vllm")
    server.faults.fail_next = 2
    async with engine_for(server.url, max_retries=2) as engine:
        events = await run(engine, chat("ok"))
    assert events[-1].finish_reason is FinishReason.STOP
    assert len(server.received) == 3


async def test_5xx_past_the_retries_raises_a_retryable_error(standin: MakeStandIn) -> None:
    server = standin("vllm")
    server.faults.fail_status = 503
    async with engine_for(server.url, max_retries=1) as engine:
        with pytest.raises(UpstreamUnavailableError) as caught:
            await run(engine, chat("ok"))
    assert caught.value.kind == "http_5xx"
    assert len(server.received) == 2


async def test_4xx_is_never_retried_and_keeps_the_upstream_message(
    standin: MakeStandIn,
) -> None:
    server = standin("vllm")
    server.faults.fail_status = 400
    async with engine_for(server.url, max_retries=3) as engine:
        with pytest.raises(UpstreamRejectedError) as caught:
            await run(engine, chat("ok"))
    assert len(server.received) == 1
    assert caught.value.status_code == 400
    assert "fails on purpose" in caught.value.message


async def test_refused_connection_fails_at_once_so_the_router_can_fail_over(
    standin: MakeStandIn,
) -> None:
    server = standin("vllm")
    server.down()
    metrics = EngineMetrics(CollectorRegistry())
    async with engine_for(server.url, metrics, max_retries=2, retry_backoff_s=1.0) as engine:
        began = asyncio.get_running_loop().time()
        with pytest.raises(UpstreamUnavailableError) as caught:
            await run(engine, chat("ok"))
        took = asyncio.get_running_loop().time() - began
    assert caught.value.kind == "connect"
    assert took < 1.0  # no backoff sleep: nothing listens there
    labels = {"backend": "vllm-0", "model": "qwen3", "kind": "connect"}
    assert metrics.registry.get_sample_value("luodi_request_errors_total", labels) == 1


@pytest.mark.parametrize(
    ("max_tokens", "sent"),
    [(100, 100), (4095, 4095), (4096, None), (10**12, None)],
    ids=["small", "just-fits", "context-length", "absurd"],
)
async def test_max_tokens_at_or_past_the_context_is_left_to_the_upstream(
    standin: MakeStandIn, max_tokens: int, sent: int | None
) -> None:
    # A client that sends no max_tokens gets the context length from the API layer;
    # vLLM would refuse prompt + max_tokens > max_model_len with a 400.
    server = standin("vllm")
    engine = UpstreamEngine(backend(server.url), model="qwen3", context_length=4096)
    await engine.start()
    try:
        await run(engine, chat("ok", max_tokens=max_tokens))
    finally:
        await engine.stop()
    assert server.received[-1].get("max_tokens") == sent


async def test_probe_reads_the_context_length_the_upstream_reports(
    standin: MakeStandIn,
) -> None:
    server = standin("qwen3")
    server.max_model_len = 2048
    engine = UpstreamEngine(backend(server.url), model="qwen3", context_length=32768)
    await engine.start()
    try:
        assert (await engine.probe()).ok
        await run(engine, chat("ok", max_tokens=4000))
    finally:
        await engine.stop()
    assert engine.max_model_len == 2048
    assert "max_tokens" not in server.received[-1]
