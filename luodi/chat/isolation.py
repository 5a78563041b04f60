"""Keeping client text apart from the template's control tokens.

A rendered prompt is tokenized with special tokens parsed, so that the template's
turn markers become control tokens. Client text (message contents, names, tool-call
arguments, retrieved passages) that spells a control token (``<end_of_turn>``,
``<|im_start|>``) would become one too and forge a turn. A string the engine flags
as spelling one is wrapped in two noncharacters before rendering; the rendered text
is split at them, and the spans between are tokenized as plain text. Templates
transform what they print (strip, split on ``</think>``), so whether the isolation
held is checked afterwards against a rendering with the flagged strings replaced
(see ``PreparedChat.reference_prompt``), and a request whose control tokens differ
is refused rather than served.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from luodi.errors import InvalidRequestError

__all__ = ["CLOSE", "OPEN", "isolated", "replaced", "split_isolated"]

OPEN = "\ufdd0"
CLOSE = "\ufdd1"
"""Unicode noncharacters: never in text a tokenizer should see, kept by ``tojson``."""

_PLACEHOLDER = "x"

_UNKEPT = (
    "a message spells the model's control tokens in a place the chat template"
    " does not keep apart from its own; remove them"
)


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_map_strings(v, change) for v in value]
    if isinstance(value, dict):
        return {k: _map_strings(v, change) for k, v in value.items()}
    return value


def _client_fields(
    messages: Sequence[dict[str, Any]], change: Callable[[str], str]
) -> list[dict[str, Any]]:
    """Messages with ``change`` applied to every client string; roles and ids kept."""
    out = []
    for message in messages:
        item = dict(message)
        for key, value in message.items():
            if key not in ("role", "tool_call_id"):
                item[key] = _map_strings(value, change)
        out.append(item)
    return out


def isolated(
    messages: Sequence[dict[str, Any]], flagged: Callable[[str], bool]
) -> tuple[list[dict[str, Any]], bool]:
    """Messages with each flagged string wrapped in OPEN/CLOSE; whether any was."""
    found = False

    def wrap(text: str) -> str:
        nonlocal found
        if OPEN in text or CLOSE in text:
            raise InvalidRequestError(
                "message text may not contain the noncharacters U+FDD0 or U+FDD1",
                param="messages",
            )
        if text and flagged(text):
            found = True
            return f"{OPEN}{text}{CLOSE}"
        return text

    return _client_fields(messages, wrap), found


def replaced(
    messages: Sequence[dict[str, Any]], flagged: Callable[[str], bool]
) -> list[dict[str, Any]]:
    """Messages with each flagged string replaced by a plain placeholder."""
    return _client_fields(messages, lambda t: _PLACEHOLDER if t and flagged(t) else t)


def split_isolated(text: str) -> tuple[str, list[tuple[int, int]]]:
    """The text without the markers, and the [start, end) spans they enclosed.

    Raises:
        InvalidRequestError: the template split a marked string apart (unbalanced markers).
    """
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0
    start: int | None = None
    pos = 0
    while True:
        cut = min((i for i in (text.find(OPEN, pos), text.find(CLOSE, pos)) if i >= 0), default=-1)
        piece = text[pos:] if cut < 0 else text[pos:cut]
        out.append(piece)
        length += len(piece)
        if cut < 0:
            break
        opening = text[cut] == OPEN
        if opening == (start is not None):
            raise InvalidRequestError(_UNKEPT, param="messages")
        if opening:
            start = length
        else:
            assert start is not None
            if length > start:
                spans.append((start, length))
            start = None
        pos = cut + 1
    if start is not None:
        raise InvalidRequestError(_UNKEPT, param="messages")
    return "".join(out), spans
