"""Qwen3/Hermes ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` output parsing.

The model writes each call as a JSON object between tags; clients expect OpenAI
``tool_calls``. Text outside the tags stays content and streams at once; a call is
emitted whole when its closing tag arrives. A call that is not valid (bad JSON, an
unknown function) is handed back verbatim as content: a model's mistake is the
client's to see, never a server error.
"""

from __future__ import annotations

import enum
import json
import secrets
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from luodi.chat._tags import partial_tag_len

__all__ = ["ParsedToolOutput", "ToolCall", "ToolCallParser", "new_call_id", "tool_names"]

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
_ID_ALPHABET = string.ascii_letters + string.digits


def new_call_id() -> str:
    """A fresh OpenAI-style tool call id: ``call_`` and 24 random letters and digits."""
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def tool_names(tools: Iterable[Mapping[str, Any]]) -> list[str]:
    """The function names declared in an OpenAI ``tools`` list, in order."""
    names: list[str] = []
    for tool in tools:
        function = tool.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            names.append(function["name"])
    return names


@dataclass(frozen=True)
class ToolCall:
    """One parsed call; ``arguments`` is a JSON object serialized as a string (OpenAI's shape)."""

    id: str
    name: str
    arguments: str
    index: int
    """Position among this answer's calls, for streaming deltas."""

    def to_openai(self) -> dict[str, Any]:
        """The entry of a message's ``tool_calls``."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }

    def to_delta(self) -> dict[str, Any]:
        """The entry of a streamed ``delta.tool_calls`` (the whole call in one chunk)."""
        return {"index": self.index, **self.to_openai()}


@dataclass
class ParsedToolOutput:
    """A whole answer split into content and calls."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)


class _State(enum.Enum):
    TEXT = "text"
    CALL = "call"


class ToolCallParser:
    """Streaming parser of ``<tool_call>`` blocks.

    Whitespace that only separates calls (or trails the last one) is dropped, so an
    answer made of calls alone has empty content.

    Args:
        tools: The request's OpenAI ``tools``; a call to a name not among them is
            malformed. ``None`` accepts any name.
        new_id: Makes call ids (tests pass a counter for stable ids).
    """

    def __init__(
        self,
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        new_id: Callable[[], str] = new_call_id,
    ) -> None:
        self._names = set(tool_names(tools)) if tools is not None else None
        self._new_id = new_id
        self._state = _State.TEXT
        self._buf = ""
        self._pending_ws = ""  # whitespace not yet known to be content
        self._after_call = False
        self._calls = 0

    @property
    def calls(self) -> int:
        """How many valid calls have been emitted so far."""
        return self._calls

    def parse(self, text: str) -> ParsedToolOutput:
        """Parse a whole answer (use a fresh parser per answer)."""
        result = ParsedToolOutput(content="")
        for item in self.feed(text) + self.flush():
            if isinstance(item, ToolCall):
                result.tool_calls.append(item)
            else:
                result.content += item
        return result

    def feed(self, delta: str) -> list[str | ToolCall]:
        """Take the next piece of text; return content strings and finished calls, in order."""
        self._buf += delta
        return self._drain(final=False)

    def flush(self) -> list[str | ToolCall]:
        """The answer is complete: return what is still held back.

        An unclosed call whose JSON is complete (the closing tag was eaten by a
        stop sequence, say) still counts as a call.
        """
        out = self._drain(final=True)
        if self._pending_ws and not self._calls:
            out.append(self._pending_ws)
        self._pending_ws = ""
        return out

    def _text(self, text: str, out: list[str | ToolCall]) -> None:
        if self._after_call:
            text = text.lstrip()
            if not text:
                return
            self._after_call = False
        body = text.rstrip()
        if not body:
            self._pending_ws += text
            return
        out.append(self._pending_ws + body)
        self._pending_ws = text[len(body) :]

    def _call(self, body: str) -> ToolCall | None:
        try:
            obj = json.loads(body)
        except json.JSONDecodeError:
            return None
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return None
        name: str = obj["name"]
        if self._names is not None and name not in self._names:
            return None
        arguments = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(arguments, str):  # some models double-encode the arguments
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError:
                return None
        if not isinstance(arguments, dict):
            return None
        call = ToolCall(
            id=self._new_id(),
            name=name,
            arguments=json.dumps(arguments, ensure_ascii=False),
            index=self._calls,
        )
        self._calls += 1
        return call

    def _emit_call(self, body: str, raw: str, out: list[str | ToolCall]) -> None:
        call = self._call(body)
        if call is None:
            self._text(raw, out)
            return
        self._pending_ws = ""
        self._after_call = True
        out.append(call)

    def _drain(self, *, final: bool) -> list[str | ToolCall]:
        out: list[str | ToolCall] = []
        while True:
            if self._state is _State.TEXT:
                start = self._buf.find(TOOL_CALL_OPEN)
                if start >= 0:
                    self._text(self._buf[:start], out)
                    self._buf = self._buf[start + len(TOOL_CALL_OPEN) :]
                    self._state = _State.CALL
                    continue
                hold = 0 if final else partial_tag_len(self._buf, TOOL_CALL_OPEN)
                self._text(self._buf[: len(self._buf) - hold], out)
                self._buf = self._buf[len(self._buf) - hold :]
                return out
            end = self._buf.find(TOOL_CALL_CLOSE)
            if end >= 0:
                body = self._buf[:end]
                self._buf = self._buf[end + len(TOOL_CALL_CLOSE) :]
                self._state = _State.TEXT
                self._emit_call(body, TOOL_CALL_OPEN + body + TOOL_CALL_CLOSE, out)
                continue
            if final:
                body, self._buf = self._buf, ""
                self._state = _State.TEXT
                self._emit_call(body, TOOL_CALL_OPEN + body, out)
            return out
