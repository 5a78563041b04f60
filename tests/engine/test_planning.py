"""The one default-max_tokens policy, as each engine's ``prepare`` applies it.

Explicit max_tokens wins; else ``engine.default_max_tokens``; else up to the end of
the context on the embedded engine and no max_tokens at all sent to an upstream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from standin import StandIn

from luodi.config.routing import BackendKind, BackendSettings, RoutingSettings
from luodi.engine.llamacpp.prompts import prepare_embedded
from luodi.engine.planning import completion_limit
from luodi.engine.router import Router
from luodi.engine.types import (
    ChatPrompt,
    PromptRequest,
    RenderedPrompt,
    SamplingParams,
    TemplateMetadata,
)
from luodi.engine.upstream import UpstreamEngine
from luodi.errors import ContextLengthError, InvalidRequestError

MakeStandIn = Callable[[str], StandIn]


@pytest.mark.parametrize(
    ("explicit", "default", "room", "limit"),
    [
        (50, None, 1000, 50),
        (50, 10, 1000, 50),
        (5000, None, 1000, 5000),  # too long is refused with both numbers, not cut
        (None, 100, 1000, 100),
        (None, 100, 40, 40),
        (None, None, 1000, 1000),
        (None, 100, None, 100),
        (None, None, None, None),
    ],
    ids=[
        "explicit",
        "explicit-beats-default",
        "explicit-not-capped",
        "default",
        "default-capped-by-room",
        "to-the-end-of-the-context",
        "upstream-default",
        "upstream-none",
    ],
)
def test_completion_limit(
    explicit: int | None, default: int | None, room: int | None, limit: int | None
) -> None:
    assert completion_limit(explicit, default, room) == limit


class ByteTokens:
    """A tokenizer stand-in for the embedded engine: one token per byte."""

    max_model_len = 64
    template_metadata = TemplateMetadata(configured=None, gguf_template=None, architecture=None)

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        return list(text.encode())

    def spells_control(self, text: str) -> bool:
        return False

    def tokenize_chat(self, prompt: str | RenderedPrompt) -> list[int]:
        text = prompt if isinstance(prompt, str) else prompt.text
        return [1, *text.encode()]


def render(
    template: TemplateMetadata, isolate: Callable[[str], bool] | None = None
) -> RenderedPrompt:
    return RenderedPrompt("user: hi\nassistant:", grammar="start: /x/")


def chat(max_tokens: int | None, n: int = 1, **extra: Any) -> PromptRequest:
    prompt = ChatPrompt([{"role": "user", "content": "hi"}], {}, render)
    return PromptRequest(SamplingParams(max_tokens=max_tokens, seed=7), chat=prompt, n=n, **extra)


@pytest.mark.parametrize(
    ("max_tokens", "default", "expected"),
    [(8, None, 8), (None, 10, 10), (None, None, 64 - 20)],
    ids=["explicit", "default", "rest-of-context"],
)
def test_embedded_chat_is_rendered_tokenized_and_limited(
    max_tokens: int | None, default: int | None, expected: int
) -> None:
    planned = prepare_embedded(ByteTokens(), chat(max_tokens, n=2), default)
    assert [len(p.prompt_tokens) for p in planned] == [20, 20]  # BOS + 19 bytes
    assert [p.params.max_tokens for p in planned] == [expected, expected]
    assert [p.params.seed for p in planned] == [7, 8]  # each choice its own seed
    assert all(p.params.grammar == "start: /x/" and p.messages is None for p in planned)


def test_embedded_chat_with_no_room_left_is_refused_naming_the_messages() -> None:
    engine = ByteTokens()
    engine.max_model_len = 20
    with pytest.raises(ContextLengthError) as info:
        prepare_embedded(engine, chat(None), None)
    assert info.value.param == "messages"


def backend(url: str) -> BackendSettings:
    return BackendSettings(name="vllm", kind=BackendKind.VLLM, url=url, read_timeout_s=5.0)


@pytest.mark.parametrize(
    ("max_tokens", "default", "sent"),
    [(8, None, 8), (8, 100, 8), (None, 5, 5), (None, None, None)],
    ids=["explicit", "explicit-beats-default", "default", "omitted"],
)
async def test_upstream_gets_the_limit_or_none_at_all(
    standin: MakeStandIn, max_tokens: int | None, default: int | None, sent: int | None
) -> None:
    server = standin("vllm")
    engine = UpstreamEngine(backend(server.url), model="qwen3", context_length=4096)
    await engine.start()
    try:
        [request] = engine.prepare(chat(max_tokens, default_max_tokens=default))
        assert request.messages == [{"role": "user", "content": "hi"}]
        async for event in engine.generate(request):
            if event.finished:
                break
    finally:
        await engine.stop()
    assert server.received[-1].get("max_tokens") == sent
    assert ("max_tokens" in server.received[-1]) is (sent is not None)


def test_upstream_refuses_token_id_prompts() -> None:
    engine = UpstreamEngine(backend("http://127.0.0.1:9/v1"), model="qwen3")
    with pytest.raises(InvalidRequestError, match="text prompts"):
        engine.prepare(PromptRequest(SamplingParams(), prompt=[1, 2, 3]))


class PlanningEngine:
    """An embedded backend stand-in: it plans with the byte tokenizer above."""

    def prepare(self, request: PromptRequest) -> list[Any]:
        return prepare_embedded(ByteTokens(), request, None)


def routed(*backends: dict[str, Any]) -> Router:
    settings = RoutingSettings.model_validate(
        {"mode": "private", "models": {"m": {"backends": list(backends)}}}
    )
    factories = {BackendKind.LLAMACPP: lambda *_: PlanningEngine()}
    return Router.from_settings(settings, factories=factories)  # type: ignore[dict-item]


def test_a_model_served_only_by_the_embedded_engine_is_planned_by_it() -> None:
    router = routed({"name": "local", "kind": "llamacpp", "format": "gguf"})
    [request] = router.engine("m").prepare(chat(None))
    assert len(request.prompt_tokens) == 20 and request.messages is None


def test_a_routed_upstream_model_gets_the_messages_as_they_are() -> None:
    router = routed({"name": "v", "kind": "vllm", "url": "http://127.0.0.1:9/v1", "format": "awq"})
    [request] = router.engine("m").prepare(chat(None))
    assert request.prompt_tokens == [] and request.messages == [{"role": "user", "content": "hi"}]
    assert request.params.max_tokens is None
