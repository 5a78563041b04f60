"""Restore: the caller's values back where Protect put pseudonyms, per channel, streamed."""

from __future__ import annotations

from typing import Any, Protocol

from luodi.api.pipeline.exchange import Exchange

__all__ = ["AnswerRestorer", "Restore", "TextRestorer"]


class TextRestorer(Protocol):
    """Restores pseudonyms in streamed text; a whole text is one ``feed`` plus ``flush``."""

    def feed(self, delta: str) -> str: ...

    def flush(self) -> str: ...


class _Identity:
    """The restorer when nothing was masked."""

    def feed(self, delta: str) -> str:
        return delta

    def flush(self) -> str:
        return ""


class AnswerRestorer:
    """One answer's restorers: one per (choice, channel), since a pseudonym may be cut
    across chunks of one channel but never runs from one channel into another."""

    CHANNELS = ("content", "reasoning_content", "text")

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._open: dict[tuple[int, str], TextRestorer] = {}

    def _fresh(self) -> TextRestorer:
        protected = self._exchange.protected
        return protected[-1].restorer() if protected else _Identity()

    def _get(self, index: int, channel: str) -> TextRestorer:
        key = (index, channel)
        if key not in self._open:
            self._open[key] = self._fresh()
        return self._open[key]

    def feed(self, index: int, channel: str, text: str) -> str:
        """Restored text of one streamed delta (held back while a pseudonym may be cut)."""
        return self._get(index, channel).feed(text)

    def text(self, text: str) -> str:
        """A whole text restored."""
        restorer = self._fresh()
        return restorer.feed(text) + restorer.flush()

    def tool_calls(self, tool_calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        protected = self._exchange.protected
        return protected[-1].restore_tool_calls(tool_calls) if protected else tool_calls

    def delta(self, index: int, delta: dict[str, Any]) -> dict[str, Any] | None:
        """A chat delta with its text restored; None when all of it is held back for now."""
        out = dict(delta)
        if "tool_calls" in out:
            out["tool_calls"] = self.tool_calls(out["tool_calls"])
            return out
        for channel in self.CHANNELS:
            if out.get(channel):
                out[channel] = self.feed(index, channel, out[channel])
                return out if out[channel] else None
        return out

    def flush(self, index: int) -> list[dict[str, str]]:
        """What choice ``index`` still holds back, one delta per channel."""
        tails = []
        for channel in self.CHANNELS:
            if (index, channel) in self._open:
                tail = self._open.pop((index, channel)).flush()
                if tail:
                    tails.append({channel: tail})
        return tails

    def message(self, message: dict[str, Any]) -> dict[str, Any]:
        """A whole chat message restored: content, reasoning and tool-call arguments."""
        out = dict(message)
        for channel in self.CHANNELS:
            if isinstance(out.get(channel), str):
                out[channel] = self.text(out[channel])
        if out.get("tool_calls"):
            out["tool_calls"] = self.tool_calls(out["tool_calls"])
        return out


class Restore:
    """Hands each answer its restorers; with nothing masked they pass text through."""

    name = "restore"

    def answer(self, exchange: Exchange) -> AnswerRestorer:
        return AnswerRestorer(exchange)
