"""DOCX: paragraphs with heading styles, list paragraphs and tables, in body order."""

from __future__ import annotations

import io

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from luodi.knowledge.types import Block

__all__ = ["load_docx"]


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    if style.startswith("Heading"):
        digits = style.removeprefix("Heading").strip()
        return int(digits) if digits.isdigit() else 1
    return 0


def load_docx(data: bytes) -> list[Block]:
    """Blocks of a Word document; consecutive list paragraphs form one list block."""
    document = docx.Document(io.BytesIO(data))
    blocks: list[Block] = []
    items: list[str] = []
    for element in document.iter_inner_content():
        if isinstance(element, Paragraph):
            text = element.text.strip()
            style = element.style.name if element.style is not None else ""
            if style.startswith("List") and text:
                items.append(f"- {text}")
                continue
            if items:
                blocks.append(Block("list", "\n".join(items)))
                items = []
            if not text:
                continue
            level = _heading_level(style)
            blocks.append(Block("heading", text, level) if level else Block("text", text))
        elif isinstance(element, Table):
            rows = [" | ".join(c.text.strip() for c in row.cells) for row in element.rows]
            blocks.append(Block("table", "\n".join(rows)))
    if items:
        blocks.append(Block("list", "\n".join(items)))
    return blocks
