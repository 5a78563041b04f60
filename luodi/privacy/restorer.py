"""Put the original values back into the model's answer, whole or streamed.

A streamed answer may split a tag anywhere (``<PHO`` + ``NE_1>``): ``feed`` holds back
a trailing fragment that could still become a tag and emits everything before it. When
the policy masks output, new personal data the model writes is masked first (in whole
sentences, so a number is never split between two analyses), then tags are restored,
so the client gets back its own values but nothing the model made up or recalled.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping

__all__ = ["TAG_PATTERN", "OutputMasker", "StreamRestorer"]

TAG_PATTERN = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
"""Pseudonym tags, as ``operators.tag_for`` writes them."""

_TAG_PREFIX = re.compile(r"<(?:[A-Z][A-Z0-9_]*(?:_\d*)?)?\Z")
_MAX_TAG = 48  # longer fragments cannot be a tag: emit them
# Where the output masker may cut: after sentence punctuation or a line break.
_BOUNDARY = re.compile(r"[。！？；!?;\n]")
_MAX_SEGMENT = 1024  # past this without a boundary, analyze what there is

OutputMasker = Callable[[str], tuple[str, Mapping[str, int]]]
"""Masks one segment of model output: (masked text, entity type -> count)."""


class StreamRestorer:
    """Restores ``<TYPE_n>`` tags to their values; optionally masks model-made PII first.

    Not thread-safe: one restorer per response.
    """

    def __init__(self, mapping: Mapping[str, str], masker: OutputMasker | None = None) -> None:
        self._mapping = dict(mapping)
        self._masker = masker
        self._raw = ""  # output not yet masked (only with a masker)
        self._pending = ""  # masked output not yet emitted (a possible tag prefix)
        self.output_findings: Counter[str] = Counter()
        """Entity types masked in the model's own output."""

    def restore(self, text: str) -> str:
        """A whole text with every known tag replaced (unknown tags stay as they are)."""
        if not self._mapping or "<" not in text:
            return text
        return TAG_PATTERN.sub(lambda m: self._mapping.get(m.group(), m.group()), text)

    def restore_whole(self, text: str) -> str:
        """A complete, non-streamed answer: masked (if the policy says output), restored."""
        return self.restore(self._mask(text))

    def feed(self, delta: str) -> str:
        """Text safe to emit now, given the next chunk of the stream."""
        if self._masker is None:
            return self._restore_stream(delta)
        self._raw += delta
        cut = _last_boundary(self._raw)
        if cut < 0 and len(self._raw) < _MAX_SEGMENT:
            return ""
        if cut < 0:
            cut = len(self._raw)
        segment, self._raw = self._raw[:cut], self._raw[cut:]
        return self._restore_stream(self._mask(segment))

    def flush(self) -> str:
        """Everything still held back, at the end of the stream."""
        out = ""
        if self._raw:
            out = self._restore_stream(self._mask(self._raw))
            self._raw = ""
        tail, self._pending = self._pending, ""
        return out + self.restore(tail)

    def _mask(self, text: str) -> str:
        if self._masker is None or not text:
            return text
        masked, counts = self._masker(text)
        self.output_findings.update(counts)
        return masked

    def _restore_stream(self, delta: str) -> str:
        buf = self._pending + delta
        hold = _held_suffix(buf)
        self._pending = buf[len(buf) - hold :] if hold else ""
        return self.restore(buf[: len(buf) - hold])


def _held_suffix(buf: str) -> int:
    """Length of the tail of ``buf`` that may be the start of a tag."""
    start = buf.rfind("<")
    if start < 0 or len(buf) - start > _MAX_TAG:
        return 0
    return len(buf) - start if _TAG_PREFIX.match(buf, start) else 0


def _last_boundary(text: str) -> int:
    """Offset just past the last boundary character, or -1."""
    last = -1
    for m in _BOUNDARY.finditer(text):
        last = m.end()
    return last
