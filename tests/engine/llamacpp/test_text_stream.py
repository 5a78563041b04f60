"""Detokenization and stop strings: what a streaming client sees."""

from __future__ import annotations

import pytest

from luodi.engine.llamacpp.detokenizer import IncrementalDetokenizer
from luodi.engine.llamacpp.stop import StopMatcher


def test_chinese_character_split_across_tokens_is_never_emitted_half() -> None:
    detok = IncrementalDetokenizer()
    data = "你好，世界".encode()
    pieces = [data[i : i + 1] for i in range(len(data))]  # one byte per "token"
    deltas = [detok.feed(p) for p in pieces]
    assert all("\ufffd" not in d for d in deltas)
    assert "".join(deltas) + detok.flush() == "你好，世界"


def test_invalid_bytes_do_not_stall_the_stream() -> None:
    detok = IncrementalDetokenizer()
    assert detok.feed(b"\xff") == "\ufffd"
    assert detok.feed(b"ok") == "ok"


@pytest.mark.parametrize(
    ("stops", "deltas", "emitted", "stopped"),
    [
        (["###"], ["Hello #", "#", "# world"], "Hello ", True),
        (["END"], ["the E", "ND is near"], "the ", True),
        (["END"], ["the E", "ast"], "the East", False),
        (["\n\n"], ["line\n", "\nnext"], "line", True),
        ([], ["plain ", "text"], "plain text", False),
        (["。"], ["你好", "。再见"], "你好", True),
    ],
)
def test_stop_strings_match_across_deltas_and_are_never_emitted(
    stops: list[str], deltas: list[str], emitted: str, stopped: bool
) -> None:
    matcher = StopMatcher(stops)
    out = ""
    hit = False
    for delta in deltas:
        text, hit = matcher.feed(delta)
        out += text
        if hit:
            break
    if not hit:
        out += matcher.flush()
    assert out == emitted
    assert hit is stopped


def test_partial_stop_prefix_is_held_back_until_resolved() -> None:
    matcher = StopMatcher(["</answer>"])
    text, hit = matcher.feed("result </ans")
    assert text == "result " and not hit
    text, hit = matcher.feed("wer> trailing")
    assert text == "" and hit
