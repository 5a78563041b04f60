"""tool_choice semantics (vLLM's) and the grammars that force a call."""

from __future__ import annotations

from typing import Any

import pytest

from luodi.chat import ChatTemplate, prepare_chat, resolve_tool_choice, tool_choice_grammar
from luodi.errors import InvalidRequestError
from tests.chat.byte_grammar import accepts
from tests.chat.conftest import CLOCK_TOOL, WEATHER_TOOL

TOOLS = [WEATHER_TOOL, CLOCK_TOOL]
NAMED_CLOCK = {"type": "function", "function": {"name": "now"}}


@pytest.mark.parametrize(
    ("tools", "choice", "mode", "parse", "forced"),
    [
        (None, None, "none", False, False),
        (TOOLS, None, "auto", True, False),
        (TOOLS, "auto", "auto", True, False),
        (TOOLS, "none", "none", False, False),
        (TOOLS, "required", "required", True, True),
        (TOOLS, NAMED_CLOCK, "function", True, True),
    ],
)
def test_tool_choice_modes(tools: Any, choice: Any, mode: str, parse: bool, forced: bool) -> None:
    policy = resolve_tool_choice(tools, choice)
    assert (policy.mode, policy.parse_calls, policy.forced) == (mode, parse, forced)
    assert (policy.prompt_tools is not None) == parse


@pytest.mark.parametrize(
    ("tools", "choice", "match"),
    [
        (None, "required", "needs at least one tool"),
        (TOOLS, "sometimes", "tool_choice must be"),
        (TOOLS, {"type": "function", "function": {"name": "nope"}}, "not in tools"),
        (TOOLS, {"type": "function"}, "tool_choice must be"),
        ([{"type": "function", "function": {}}], None, "tools\\[0\\]"),
        ([CLOCK_TOOL, CLOCK_TOOL], None, "declared twice"),
    ],
    ids=["required-no-tools", "unknown-mode", "unknown-name", "no-name", "bad-tool", "duplicate"],
)
def test_bad_tool_choice_is_an_invalid_request(tools: Any, choice: Any, match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        resolve_tool_choice(tools, choice)


@pytest.mark.parametrize("choice", [None, "auto", "none"])
def test_no_grammar_unless_a_call_is_forced(choice: Any) -> None:
    assert tool_choice_grammar(TOOLS, choice) is None


CALL_W = (
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "北京", "unit": "celsius"}}'
    "\n</tool_call>"
)
CALL_C = '<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>'


@pytest.mark.parametrize(
    ("choice", "text", "accepted"),
    [
        ("required", CALL_W, True),
        ("required", CALL_C, True),
        ("required", f"{CALL_W}\n{CALL_C}", True),
        ("required", "It is sunny.", False),
        ("required", '<tool_call>\n{"name": "rm", "arguments": {}}\n</tool_call>', False),
        (
            "required",
            '<tool_call>\n{"name": "get_weather", "arguments": {"unit": "celsius"}}\n</tool_call>',
            False,
        ),
        (
            "required",
            '<tool_call>\n{"name": "get_weather", "arguments": {"city": "x", "unit": "kelvin"}}'
            "\n</tool_call>",
            False,
        ),
        (NAMED_CLOCK, CALL_C, True),
        (NAMED_CLOCK, CALL_W, False),
        (NAMED_CLOCK, f"{CALL_C}\n{CALL_C}", False),
    ],
    ids=[
        "required-weather",
        "required-clock",
        "required-two-calls",
        "required-no-call",
        "required-unknown-name",
        "required-missing-required-arg",
        "required-bad-enum",
        "named-right",
        "named-wrong-function",
        "named-only-one",
    ],
)
def test_forced_call_grammar_accepts_only_valid_calls(
    choice: Any, text: str, accepted: bool
) -> None:
    assert accepts(tool_choice_grammar(TOOLS, choice) or "", text) is accepted


def test_forced_call_turns_qwen3_thinking_off(qwen3: ChatTemplate) -> None:
    prepared = prepare_chat(
        qwen3, [{"role": "user", "content": "weather? /think"}], tools=TOOLS, tool_choice="required"
    )
    assert prepared.grammar is not None
    assert prepared.prompt.endswith("<think>\n\n</think>\n\n")
    assert not prepared.thinking


def test_tool_choice_none_leaves_tools_out_of_the_prompt(qwen3: ChatTemplate) -> None:
    prepared = prepare_chat(
        qwen3, [{"role": "user", "content": "hi"}], tools=TOOLS, tool_choice="none"
    )
    assert "# Tools" not in prepared.prompt
    assert prepared.output_parser().parse(CALL_C).content == CALL_C


def test_json_response_format_and_forced_call_cannot_combine(qwen3: ChatTemplate) -> None:
    with pytest.raises(InvalidRequestError, match="cannot be combined"):
        prepare_chat(
            qwen3,
            [{"role": "user", "content": "x"}],
            tools=TOOLS,
            tool_choice="required",
            response_format={"type": "json_object"},
        )
