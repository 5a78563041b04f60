"""Plain text: paragraphs separated by blank lines."""

from __future__ import annotations

import re

from luodi.knowledge.loaders.limits import ParseLimits, PartCounter
from luodi.knowledge.types import Block

__all__ = ["decode_text", "load_text"]

_BLANK = re.compile(r"\n\s*\n")


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), falling back to GB18030 for legacy Chinese files."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValueError("not UTF-8 or GB18030 text")


def load_text(data: bytes, limits: ParseLimits) -> list[Block]:
    """One ``text`` block per paragraph."""
    text = decode_text(data).replace("\r\n", "\n")
    counter = PartCounter(limits, "paragraphs")
    blocks = []
    for paragraph in _BLANK.split(text):
        if paragraph.strip():
            counter.add()
            blocks.append(Block("text", paragraph.strip()))
    return blocks
