"""Shared helpers for the chat-format tests: the public templates kept as fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from luodi.chat import ChatTemplate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "当前天气",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
CLOCK_TOOL = {"type": "function", "function": {"name": "now", "description": "The time."}}


def fixture_template(name: str, **tokens: str) -> ChatTemplate:
    """A template from ``tests/fixtures/chat_templates``."""
    return ChatTemplate.from_file(FIXTURES / f"{name}.jinja", **tokens)


@pytest.fixture(scope="session")
def qwen3() -> ChatTemplate:
    """The public Qwen3 chat template, as Qwen3's tokenizer_config.json carries it."""
    return fixture_template("qwen3")


@pytest.fixture(scope="session")
def gemma3() -> ChatTemplate:
    """The public Gemma 3 chat template."""
    return fixture_template("gemma3", bos_token="<bos>", eos_token="<eos>")
