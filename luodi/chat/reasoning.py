"""Split model output into ``reasoning_content`` (the ``<think>`` block) and ``content``.

The same state machine serves whole texts and streams, so both give the same
split whatever the delta boundaries are.
"""

from __future__ import annotations

import enum
from typing import Literal

from luodi.chat._tags import partial_tag_len

__all__ = ["ReasoningKind", "ReasoningParser"]

ReasoningKind = Literal["reasoning", "content"]
"""Which channel a piece of text belongs to."""

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


class _State(enum.Enum):
    START = "start"  # not yet known whether the output opens a <think> block
    REASONING = "reasoning"  # inside <think>, waiting for </think>
    AFTER_THINK = "after_think"  # just closed: whitespace before the answer is dropped
    CONTENT = "content"  # the answer; passed through


class ReasoningParser:
    """Streaming splitter of ``<think>...</think>`` from the answer.

    Only a block at the very start of the output counts (leading whitespace
    allowed); later ``<think>`` text is content. Whitespace around the reasoning
    and between ``</think>`` and the answer is dropped, as Qwen3's own template
    does when it renders the turn back. An empty block (``/no_think``) yields no
    reasoning at all.

    Args:
        thinking: Whether thinking is on for this request (see
            :func:`luodi.chat.thinking.thinking_enabled`). It decides what an
            unclosed block means: all reasoning when on; when off the block is
            held and, if never closed, returned as content verbatim.
        started: The prompt already opened ``<think>`` (see
            :func:`luodi.chat.templates.prompt_opens_thinking`), so the output
            begins inside the block.
    """

    def __init__(self, *, thinking: bool = True, started: bool = False) -> None:
        self._thinking = thinking or started
        self._state = _State.REASONING if started else _State.START
        self._buf = ""
        self._opened = ""  # the raw text that opened the block, to give back verbatim
        self._reasoning_emitted = False

    @classmethod
    def split(
        cls, text: str, *, thinking: bool = True, started: bool = False
    ) -> tuple[str | None, str]:
        """Split a whole output.

        Returns:
            ``(reasoning_content, content)``; reasoning is ``None`` when there was none.
        """
        parser = cls(thinking=thinking, started=started)
        pieces = parser.feed(text) + parser.flush()
        reasoning = "".join(t for kind, t in pieces if kind == "reasoning")
        content = "".join(t for kind, t in pieces if kind == "content")
        return (reasoning or None), content

    def feed(self, delta: str) -> list[tuple[ReasoningKind, str]]:
        """Take the next piece of output; return what can be emitted now, in order."""
        self._buf += delta
        return self._drain(final=False)

    def flush(self) -> list[tuple[ReasoningKind, str]]:
        """The output is complete: return everything still held back."""
        return self._drain(final=True)

    def _reasoning(self, text: str, out: list[tuple[ReasoningKind, str]]) -> None:
        if not self._reasoning_emitted:
            text = text.lstrip()
        if text:
            out.append(("reasoning", text))
            self._reasoning_emitted = True

    def _drain(self, *, final: bool) -> list[tuple[ReasoningKind, str]]:
        out: list[tuple[ReasoningKind, str]] = []
        while True:
            if self._state is _State.START:
                stripped = self._buf.lstrip()
                if stripped.startswith(THINK_OPEN):
                    cut = len(self._buf) - len(stripped) + len(THINK_OPEN)
                    self._opened, self._buf = self._buf[:cut], self._buf[cut:]
                    self._state = _State.REASONING
                elif THINK_OPEN.startswith(stripped) and not final:
                    return out  # may still become "<think>"
                else:
                    self._state = _State.CONTENT
            elif self._state is _State.REASONING:
                end = self._buf.find(THINK_CLOSE)
                if end >= 0:
                    self._reasoning(self._buf[:end].rstrip(), out)
                    self._buf = self._buf[end + len(THINK_CLOSE) :]
                    self._state = _State.AFTER_THINK
                elif final:
                    if self._thinking:
                        self._reasoning(self._buf.rstrip(), out)
                    elif self._opened + self._buf:
                        out.append(("content", self._opened + self._buf))
                    self._buf = ""
                    return out
                elif not self._thinking:
                    return out  # thinking was off: hold until we know the block closes
                else:
                    hold = partial_tag_len(self._buf, THINK_CLOSE)
                    ready = self._buf[: len(self._buf) - hold]
                    body = ready.rstrip()  # trailing whitespace may precede </think>
                    self._buf = ready[len(body) :] + self._buf[len(self._buf) - hold :]
                    self._reasoning(body, out)
                    return out
            elif self._state is _State.AFTER_THINK:
                stripped = self._buf.lstrip()
                self._buf = stripped
                if not stripped:
                    return out
                self._state = _State.CONTENT
            else:
                if self._buf:
                    out.append(("content", self._buf))
                    self._buf = ""
                return out
