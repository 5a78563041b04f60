"""Incremental detokenization that never splits a multi-byte UTF-8 character."""

from __future__ import annotations

import codecs

__all__ = ["IncrementalDetokenizer"]


class IncrementalDetokenizer:
    """Turns token pieces (raw bytes) into text deltas.

    A token may end in the middle of a UTF-8 character (byte-fallback tokens,
    CJK split across tokens): those bytes are held until the character is whole.
    Invalid byte sequences become U+FFFD instead of stalling the stream.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, piece: bytes) -> str:
        """Add one token's bytes; return the text that is now complete."""
        return self._decoder.decode(piece, final=False)

    def flush(self) -> str:
        """Return whatever is left at the end of the stream."""
        return self._decoder.decode(b"", final=True)
