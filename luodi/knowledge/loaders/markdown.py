"""Markdown: ATX headings, lists and pipe tables kept as blocks."""

from __future__ import annotations

import re

from luodi.knowledge.loaders.limits import ParseLimits, PartCounter
from luodi.knowledge.loaders.text import decode_text
from luodi.knowledge.types import Block, BlockKind

__all__ = ["load_markdown"]

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LIST = re.compile(r"^\s*([-*+]|\d+[.)])\s+")


def _kind(line: str) -> BlockKind:
    if line.lstrip().startswith("|"):
        return "table"
    if _LIST.match(line):
        return "list"
    return "text"


def load_markdown(data: bytes, limits: ParseLimits) -> list[Block]:
    """Headings, paragraphs, lists and tables of a Markdown file."""
    counter = PartCounter(limits, "lines")
    blocks: list[Block] = []
    current: list[str] = []
    kind: BlockKind = "text"

    def flush() -> None:
        if current:
            blocks.append(Block(kind, "\n".join(current).strip()))
            current.clear()

    for line in decode_text(data).replace("\r\n", "\n").split("\n"):
        counter.add()
        heading = _HEADING.match(line)
        if heading:
            flush()
            blocks.append(Block("heading", heading.group(2), level=len(heading.group(1))))
            continue
        if not line.strip():
            flush()
            continue
        line_kind = _kind(line)
        # A list item's continuation lines stay in the list.
        if current and line_kind != kind and not (kind == "list" and line.startswith(" ")):
            flush()
        if not current:
            kind = line_kind
        current.append(line)
    flush()
    return blocks
