"""Qwen3 output through the chat route: <think> becomes reasoning_content, <tool_call>
becomes tool_calls, streamed and not.

The engine here is scripted (it replays a Qwen3-style answer in awkward chunks) because
the bundled Gemma model does not think; everything around it is the real API.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from luodi.api.app import create_app
from luodi.chat import ChatTemplate
from luodi.config import Settings
from luodi.engine.types import (
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    Usage,
)
from luodi.security import Gateway
from tests.api.scripted_engine import ScriptedChatEngine
from tests.conftest import make_key


class ScriptedQwen(ScriptedChatEngine):
    """A scripted Qwen3-style answer, replayed in chunks of ``chunk`` characters."""

    def __init__(self, answer: str, chunk: int = 3) -> None:
        super().__init__("qwen3-scripted")
        self._answer = answer
        self._chunk = chunk

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        text, size = self._answer, self._chunk
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            yield GenerationEvent(
                request.request_id,
                text=piece,
                finish_reason=FinishReason.STOP if last else None,
                usage=Usage(len(request.prompt_tokens), len(pieces)) if last else None,
            )


async def call(
    engine: ScriptedQwen, gateway: Gateway, body: dict[str, object]
) -> tuple[httpx.Response, list[dict[str, object]]]:
    app = create_app(Settings(), engines={engine.info.name: engine}, gateway=gateway)
    key = make_key(gateway, f"qwen-{len(engine.prompts)}-{id(body)}", ["developer"])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers={"Authorization": f"Bearer {key}"}
        ) as http:
            resp = await http.post("/v1/chat/completions", json={"model": engine.info.name, **body})
    chunks = [
        json.loads(line[6:])
        for line in resp.text.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]
    return resp, chunks


THINKING = "<think>\nThe user greets me; answer briefly.\n</think>\n\nHello! 你好！"


async def test_thinking_is_split_into_reasoning_content(live_gateway: Gateway) -> None:
    resp, _ = await call(
        ScriptedQwen(THINKING),
        live_gateway,
        {"messages": [{"role": "user", "content": "hi /think"}]},
    )
    message = resp.json()["choices"][0]["message"]
    assert message["reasoning_content"].strip() == "The user greets me; answer briefly."
    assert message["content"].strip() == "Hello! 你好！"


async def test_streamed_thinking_arrives_as_reasoning_deltas(live_gateway: Gateway) -> None:
    _, chunks = await call(
        ScriptedQwen(THINKING, chunk=2),
        live_gateway,
        {"messages": [{"role": "user", "content": "hi"}], "stream": True},
    )
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    content = "".join(d.get("content") or "" for d in deltas)
    assert "<think>" not in content and "</think>" not in content
    assert reasoning.strip() == "The user greets me; answer briefly."
    assert content.strip() == "Hello! 你好！"


async def test_enable_thinking_false_renders_an_empty_think_block(live_gateway: Gateway) -> None:
    engine = ScriptedQwen("Hello!")
    resp, _ = await call(
        engine,
        live_gateway,
        {
            "messages": [{"role": "user", "content": "hi"}],
            "chat_template_kwargs": {"enable_thinking": False},
        },
    )
    assert resp.status_code == 200
    assert engine.prompts[-1].rstrip().endswith("<think>\n\n</think>")
    assert resp.json()["choices"][0]["message"]["content"] == "Hello!"


TOOL_ANSWER = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "北京"}}\n</tool_call>'
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.mark.parametrize("stream", [False, True])
async def test_qwen3_tool_call_becomes_openai_tool_calls(
    live_gateway: Gateway, stream: bool
) -> None:
    resp, chunks = await call(
        ScriptedQwen(TOOL_ANSWER, chunk=5),
        live_gateway,
        {"messages": [{"role": "user", "content": "北京天气？"}], "tools": TOOLS, "stream": stream},
    )
    if stream:
        calls = [
            tc
            for c in chunks
            if c["choices"]
            for tc in c["choices"][0]["delta"].get("tool_calls", [])
        ]
        reasons = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
        assert reasons[-1] == "tool_calls"
    else:
        choice = resp.json()["choices"][0]
        calls = choice["message"]["tool_calls"]
        assert choice["finish_reason"] == "tool_calls"
    assert calls[0]["function"]["name"] == "get_weather"
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "北京"}


async def test_malformed_tool_call_comes_back_as_content(live_gateway: Gateway) -> None:
    resp, _ = await call(
        ScriptedQwen("<tool_call>{not json</tool_call>"),
        live_gateway,
        {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS},
    )
    assert resp.status_code == 200
    message = resp.json()["choices"][0]["message"]
    assert "not json" in message["content"] and not message.get("tool_calls")


def test_fixture_template_is_the_one_served() -> None:
    fixture = Path(__file__).parents[1] / "fixtures" / "chat_templates" / "qwen3.jinja"
    assert fixture.read_text().strip() == ChatTemplate.builtin("qwen3").source.strip()
