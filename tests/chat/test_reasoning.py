"""Splitting <think> reasoning from the answer, whole and streamed."""

from __future__ import annotations

import itertools

import pytest

from luodi.chat import ReasoningParser

CASES = [
    # (output, thinking, started, reasoning, content)
    ("<think>\nLet me add.\n</think>\n\nIt is 2.", True, False, "Let me add.", "It is 2."),
    ("<think>\n\n</think>\n\nHi!", True, False, None, "Hi!"),
    ("<think>\n\n</think>\n\nHi!", False, False, None, "Hi!"),
    ("Plain answer.", True, False, None, "Plain answer."),
    ("  leading space kept", False, False, None, "  leading space kept"),
    ("still thinking</think>\n\nDone.", True, True, "still thinking", "Done."),
    ("<think>\nno end in sight", True, False, "no end in sight", ""),
    ("<think>\nno end in sight", False, False, None, "<think>\nno end in sight"),
    ("started, never closed", True, True, "started, never closed", ""),
    ("a <think> later is content", True, False, None, "a <think> later is content"),
    ("<thin", True, False, None, "<thin"),
    ("<think>a</think>b</think>c", True, False, "a", "b</think>c"),
    ("<think>\n推理\n</think>\n\n答案", True, False, "推理", "答案"),
]
IDS = [
    "think-then-answer",
    "empty-block",
    "empty-block-thinking-off",
    "no-block",
    "no-block-whitespace",
    "prompt-opened-think",
    "unclosed-thinking-on",
    "unclosed-thinking-off",
    "prompt-opened-unclosed",
    "late-tag",
    "partial-open-tag-at-end",
    "second-close-is-content",
    "chinese",
]


def stream(text: str, cuts: list[int], **kwargs: bool) -> tuple[str | None, str]:
    parser = ReasoningParser(**kwargs)
    pieces = []
    bounds = [0, *cuts, len(text)]
    for lo, hi in itertools.pairwise(bounds):
        pieces += parser.feed(text[lo:hi])
    pieces += parser.flush()
    reasoning = "".join(t for k, t in pieces if k == "reasoning") or None
    return reasoning, "".join(t for k, t in pieces if k == "content")


@pytest.mark.parametrize(("text", "thinking", "started", "reasoning", "content"), CASES, ids=IDS)
def test_whole_output_is_split(
    text: str, thinking: bool, started: bool, reasoning: str | None, content: str
) -> None:
    assert ReasoningParser.split(text, thinking=thinking, started=started) == (reasoning, content)


@pytest.mark.parametrize(("text", "thinking", "started", "reasoning", "content"), CASES, ids=IDS)
def test_streaming_gives_the_same_split_wherever_deltas_break(
    text: str, thinking: bool, started: bool, reasoning: str | None, content: str
) -> None:
    for cut in range(len(text) + 1):
        assert stream(text, [cut], thinking=thinking, started=started) == (reasoning, content)
    every_char = list(range(1, len(text)))
    assert stream(text, every_char, thinking=thinking, started=started) == (reasoning, content)


def test_reasoning_streams_before_the_block_closes() -> None:
    parser = ReasoningParser(thinking=True)
    assert parser.feed("<think>\nStep one") == [("reasoning", "Step one")]
    assert parser.feed(", step two\n</thi") == [("reasoning", ", step two")]
    assert parser.feed("nk>\n\nAnswer") == [("content", "Answer")]
    assert parser.flush() == []


def test_tags_split_across_deltas_are_never_leaked() -> None:
    parser = ReasoningParser(thinking=True)
    emitted = []
    for piece in ["<", "thi", "nk>", "x", "<", "/", "think", ">", "y"]:
        emitted += parser.feed(piece)
    emitted += parser.flush()
    assert emitted == [("reasoning", "x"), ("content", "y")]
