"""Tag matching shared by the streaming parsers: how much of a buffer to hold back."""

from __future__ import annotations


def partial_tag_len(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``.

    A streaming parser must hold those characters back: the next delta may
    complete the tag (``"...<tool_"`` + ``"call>"``).
    """
    for size in range(min(len(text), len(tag) - 1), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
