"""One answer's output, split into the OpenAI channels: reasoning, content, tool calls.

:class:`ChatOutputParser` chains the reasoning splitter and the tool-call parser
(calls are only looked for in the answer, never inside ``<think>``) and speaks
OpenAI's shapes: streamed ``delta`` objects and the final ``message``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from luodi.chat.reasoning import ReasoningKind, ReasoningParser
from luodi.chat.tool_calls import ToolCall, ToolCallParser, new_call_id

__all__ = ["ChatDelta", "ChatOutputParser", "ChatResult"]


@dataclass(frozen=True)
class ChatDelta:
    """One streamed piece: exactly one of the three fields is set."""

    reasoning_content: str | None = None
    content: str | None = None
    tool_call: ToolCall | None = None

    def to_openai(self) -> dict[str, Any]:
        """The ``choices[i].delta`` object of a ``chat.completion.chunk``."""
        if self.tool_call is not None:
            return {"tool_calls": [self.tool_call.to_delta()]}
        if self.reasoning_content is not None:
            return {"reasoning_content": self.reasoning_content}
        return {"content": self.content or ""}


@dataclass
class ChatResult:
    """A whole answer in OpenAI's channels."""

    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)

    def to_openai(self) -> dict[str, Any]:
        """The ``choices[i].message`` object of a ``chat.completion``."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.reasoning_content is not None:
            message["reasoning_content"] = self.reasoning_content
        if self.tool_calls:
            message["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        return message


class ChatOutputParser:
    """Streaming parser of one answer; use a fresh one per choice.

    Args:
        thinking: Whether thinking is on (see :func:`luodi.chat.thinking.thinking_enabled`).
        started: The prompt already opened ``<think>``.
        tools: The tools whose calls to parse; ``None`` or ``parse_tool_calls=False``
            leaves ``<tool_call>`` text as content.
        parse_tool_calls: Whether to look for calls at all (``tool_choice`` none: no).
        new_id: Makes tool call ids.
    """

    def __init__(
        self,
        *,
        thinking: bool = False,
        started: bool = False,
        tools: Sequence[Mapping[str, Any]] | None = None,
        parse_tool_calls: bool = True,
        new_id: Callable[[], str] = new_call_id,
    ) -> None:
        self._reasoning = ReasoningParser(thinking=thinking, started=started)
        self._tools = ToolCallParser(tools, new_id=new_id) if tools and parse_tool_calls else None

    @property
    def tool_calls(self) -> int:
        """How many tool calls have been emitted so far."""
        return self._tools.calls if self._tools is not None else 0

    def feed(self, text: str) -> list[ChatDelta]:
        """Take the next piece of generated text; return the deltas ready to send."""
        return self._route(self._reasoning.feed(text), final=False)

    def flush(self) -> list[ChatDelta]:
        """Generation ended: return every delta still held back."""
        return self._route(self._reasoning.flush(), final=True)

    def parse(self, text: str) -> ChatResult:
        """Parse a whole answer (on a fresh parser)."""
        result = ChatResult()
        for delta in self.feed(text) + self.flush():
            if delta.tool_call is not None:
                result.tool_calls.append(delta.tool_call)
            elif delta.reasoning_content is not None:
                result.reasoning_content = (result.reasoning_content or "") + (
                    delta.reasoning_content
                )
            else:
                result.content = (result.content or "") + (delta.content or "")
        if result.content == "" or (result.content is None and not result.tool_calls):
            result.content = None if result.tool_calls else ""
        return result

    def finish_reason(self, engine_reason: str) -> str:
        """OpenAI's finish reason: ``tool_calls`` when the answer ended after calls."""
        return "tool_calls" if engine_reason == "stop" and self.tool_calls else engine_reason

    def _route(self, pieces: list[tuple[ReasoningKind, str]], *, final: bool) -> list[ChatDelta]:
        out: list[ChatDelta] = []
        for kind, text in pieces:
            if kind == "reasoning":
                out.append(ChatDelta(reasoning_content=text))
            elif self._tools is None:
                out.append(ChatDelta(content=text))
            else:
                out.extend(self._from_tools(self._tools.feed(text)))
        if final and self._tools is not None:
            out.extend(self._from_tools(self._tools.flush()))
        return out

    @staticmethod
    def _from_tools(items: list[str | ToolCall]) -> list[ChatDelta]:
        return [
            ChatDelta(content=i) if isinstance(i, str) else ChatDelta(tool_call=i) for i in items
        ]
