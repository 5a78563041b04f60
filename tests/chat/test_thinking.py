"""Qwen3 thinking: enable_thinking and the /think, /no_think soft switches."""

from __future__ import annotations

from typing import Any

import pytest

from luodi.chat import ChatTemplate, prepare_chat, soft_switch, thinking_enabled
from luodi.errors import InvalidRequestError


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([user("hello")], None),
        ([user("explain /think")], True),
        ([user("quick /no_think")], False),
        ([user("/no_think first, then /think")], True),
        ([user("/think then /no_think")], False),
        ([user("/think"), {"role": "assistant", "content": "ok"}, user("again")], None),
        ([user("/no_think"), {"role": "assistant", "content": "ok"}, user("now /think")], True),
        ([user("/thinking is not a switch, nor a/think")], None),
        ([{"role": "user", "content": [{"type": "text", "text": "x /no_think"}]}], False),
    ],
    ids=[
        "none",
        "think",
        "no-think",
        "last-wins",
        "last-wins-2",
        "only-latest-turn",
        "latest-turn-switch",
        "not-a-word",
        "text-parts",
    ],
)
def test_soft_switch_in_latest_user_turn(messages: list[Any], expected: bool | None) -> None:
    assert soft_switch(messages) is expected


@pytest.mark.parametrize(
    ("text", "kwargs", "family", "expected"),
    [
        ("hi", None, "qwen3", True),
        ("hi", None, "generic", False),
        ("hi", {"enable_thinking": False}, "qwen3", False),
        ("hi /think", {"enable_thinking": False}, "qwen3", False),
        ("hi /no_think", {"enable_thinking": True}, "qwen3", False),
        ("hi /think", None, "qwen3", True),
        ("hi", {"enable_thinking": True}, "generic", True),
    ],
    ids=[
        "qwen3-default-on",
        "generic-default-off",
        "kwarg-off",
        "kwarg-off-beats-switch",
        "switch-beats-kwarg-on",
        "switch-on",
        "kwarg-on-generic",
    ],
)
def test_thinking_enabled(
    text: str, kwargs: dict[str, Any] | None, family: Any, expected: bool
) -> None:
    assert thinking_enabled([user(text)], kwargs, family) is expected


def test_enable_thinking_must_be_a_boolean() -> None:
    with pytest.raises(InvalidRequestError, match="enable_thinking"):
        thinking_enabled([user("x")], {"enable_thinking": "no"}, "qwen3")


def test_prepared_qwen3_request_with_thinking_off_ends_in_an_empty_block(
    qwen3: ChatTemplate,
) -> None:
    prepared = prepare_chat(qwen3, [user("hi")], chat_template_kwargs={"enable_thinking": False})
    assert prepared.prompt.endswith("<think>\n\n</think>\n\n")
    assert not prepared.thinking


def test_soft_switch_stays_in_the_prompt_as_qwen3_expects(qwen3: ChatTemplate) -> None:
    prepared = prepare_chat(qwen3, [user("hi /no_think")])
    assert "hi /no_think<|im_end|>" in prepared.prompt
    assert prepared.prompt.endswith("<|im_start|>assistant\n")
    assert not prepared.thinking


def test_a_prompt_that_opens_think_starts_the_answer_in_reasoning() -> None:
    template = ChatTemplate(
        "{% for m in messages %}{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}<think>\n{% endif %}"
    )
    prepared = prepare_chat(template, [user("q")])
    assert prepared.started_thinking and prepared.thinking
    result = prepared.output_parser().parse("pondering\n</think>\n\nanswer")
    assert (result.reasoning_content, result.content) == ("pondering", "answer")
