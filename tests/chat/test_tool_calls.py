"""Qwen3/Hermes <tool_call> output becomes OpenAI tool_calls, whole and streamed."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable

import pytest

from luodi.chat import ChatOutputParser, ToolCall, ToolCallParser, new_call_id
from tests.chat.conftest import CLOCK_TOOL, WEATHER_TOOL

TOOLS = [WEATHER_TOOL, CLOCK_TOOL]
WEATHER = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "北京"}}\n</tool_call>'
CLOCK = '<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>'


def counter() -> Callable[[], str]:
    ids = itertools.count()
    return lambda: f"call_{next(ids)}"


def calls(*names_args: tuple[str, dict[str, object]]) -> list[ToolCall]:
    return [
        ToolCall(id=f"call_{i}", name=n, arguments=json.dumps(a, ensure_ascii=False), index=i)
        for i, (n, a) in enumerate(names_args)
    ]


CASES = [
    (WEATHER, "", calls(("get_weather", {"city": "北京"}))),
    (
        f"Let me check both.\n{WEATHER}\n{CLOCK}\n",
        "Let me check both.",
        calls(("get_weather", {"city": "北京"}), ("now", {})),
    ),
    ("No tools needed.\n", "No tools needed.\n", []),
    (
        '<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>',
        '<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>',
        [],
    ),
    (
        "<tool_call>\n{not json}\n</tool_call> sorry",
        "<tool_call>\n{not json}\n</tool_call> sorry",
        [],
    ),
    (
        '<tool_call>\n{"name": "now", "arguments": [1]}\n</tool_call>',
        '<tool_call>\n{"name": "now", "arguments": [1]}\n</tool_call>',
        [],
    ),
    (f"{CLOCK}\n<tool_call>\n{{broken", "<tool_call>\n{broken", calls(("now", {}))),
    (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "上海"}}\n',
        "",
        calls(("get_weather", {"city": "上海"})),
    ),
    (
        '<tool_call>{"name": "now", "arguments": "{\\"tz\\": \\"UTC\\"}"}</tool_call>',
        "",
        calls(("now", {"tz": "UTC"})),
    ),
    ("a < b and <tool", "a < b and <tool", []),
    (f"{CLOCK} and then some text", "and then some text", calls(("now", {}))),
]
IDS = [
    "one-call",
    "text-then-two-calls",
    "no-calls",
    "unknown-function",
    "bad-json",
    "arguments-not-object",
    "valid-then-unclosed-garbage",
    "unclosed-but-complete",
    "double-encoded-arguments",
    "partial-tag-at-end",
    "text-after-call",
]


@pytest.mark.parametrize(("text", "content", "expected"), CASES, ids=IDS)
def test_whole_answer_is_parsed(text: str, content: str, expected: list[ToolCall]) -> None:
    parsed = ToolCallParser(TOOLS, new_id=counter()).parse(text)
    assert (parsed.content, parsed.tool_calls) == (content, expected)


@pytest.mark.parametrize(("text", "content", "expected"), CASES, ids=IDS)
def test_streaming_matches_whole_parse_wherever_deltas_break(
    text: str, content: str, expected: list[ToolCall]
) -> None:
    for cut in [*range(len(text) + 1), -1]:
        parser = ToolCallParser(TOOLS, new_id=counter())
        pieces = [text] if cut < 0 else [text[:cut], text[cut:]]
        if cut == -1:
            pieces = list(text)  # one character per delta
        items = [item for p in pieces for item in parser.feed(p)] + parser.flush()
        got_content = "".join(i for i in items if isinstance(i, str))
        got_calls = [i for i in items if isinstance(i, ToolCall)]
        assert (got_content, got_calls) == (content, expected), cut


def test_content_streams_at_once_and_the_call_on_its_closing_tag() -> None:
    parser = ToolCallParser(TOOLS, new_id=counter())
    assert parser.feed("Checking the weather") == ["Checking the weather"]
    assert parser.feed(" now.\n<tool_") == [" now."]
    assert parser.feed('call>\n{"name": "get_weather", ') == []
    assert parser.feed('"arguments": {"city": "北京"}}\n</tool_call>') == calls(
        ("get_weather", {"city": "北京"})
    )
    assert parser.flush() == []


def test_streamed_call_has_openai_delta_shape() -> None:
    parser = ChatOutputParser(tools=TOOLS, new_id=counter())
    deltas = parser.feed(WEATHER) + parser.flush()
    assert [d.to_openai() for d in deltas] == [
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "北京"}'},
                }
            ]
        }
    ]
    assert parser.finish_reason("stop") == "tool_calls"
    assert parser.finish_reason("length") == "length"


def test_call_ids_look_like_openai_ids() -> None:
    ids = {new_call_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"call_[A-Za-z0-9]{24}", i) for i in ids)


def test_thinking_and_calls_together_make_one_openai_message() -> None:
    parser = ChatOutputParser(thinking=True, tools=TOOLS, new_id=counter())
    text = f"<think>\nThe user wants weather. <tool_call> is how.\n</think>\n\n{WEATHER}"
    assert parser.parse(text).to_openai() == {
        "role": "assistant",
        "content": None,
        "reasoning_content": "The user wants weather. <tool_call> is how.",
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "北京"}'},
            }
        ],
    }


def test_without_tools_tool_call_text_stays_content() -> None:
    parser = ChatOutputParser(tools=TOOLS, parse_tool_calls=False)
    result = parser.parse(CLOCK)
    assert (result.content, result.tool_calls) == (CLOCK, [])


def test_plain_answer_message_has_content_and_no_tool_calls_key() -> None:
    message = ChatOutputParser().parse("Hello").to_openai()
    assert message == {"role": "assistant", "content": "Hello"}
