"""Stop strings matched across token boundaries and never emitted."""

from __future__ import annotations

__all__ = ["StopMatcher"]


class StopMatcher:
    """Holds back text that might be the start of a stop string.

    ``feed`` returns the text safe to emit and whether a stop string was hit;
    after a hit, everything from the stop string on is dropped.
    """

    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in stops if s]
        self._longest = max((len(s) for s in self._stops), default=0)
        self._pending = ""
        self.stopped = False

    def feed(self, text: str) -> tuple[str, bool]:
        if self.stopped:
            return "", True
        if not self._stops:
            return text, False
        buf = self._pending + text
        hit = min(
            (idx for idx in (buf.find(s) for s in self._stops) if idx >= 0),
            default=-1,
        )
        if hit >= 0:
            self.stopped = True
            self._pending = ""
            return buf[:hit], True
        keep = self._holdback(buf)
        self._pending = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        """End of stream: a held-back partial match is ordinary text after all."""
        out, self._pending = self._pending, ""
        return "" if self.stopped else out

    def _holdback(self, buf: str) -> int:
        """Length of the longest suffix of ``buf`` that is a proper prefix of a stop string."""
        for size in range(min(len(buf), self._longest - 1), 0, -1):
            tail = buf[-size:]
            if any(s.startswith(tail) for s in self._stops):
                return size
        return 0
