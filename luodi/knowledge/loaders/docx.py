"""DOCX: paragraphs with heading styles, list paragraphs and tables, in body order."""

from __future__ import annotations

import io
import zipfile

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from luodi.knowledge.loaders.limits import ParseLimits, PartCounter, count_in_member
from luodi.knowledge.types import Block

__all__ = ["load_docx"]


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    if style.startswith("Heading"):
        digits = style.removeprefix("Heading").strip()
        return int(digits) if digits.isdigit() else 1
    return 0


def load_docx(data: bytes, limits: ParseLimits) -> list[Block]:
    """Blocks of a Word document; consecutive list paragraphs form one list block.

    Paragraphs and table cells are counted in the raw XML first: python-docx builds
    the whole tree, so a million empty paragraphs must be refused before it does.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if "word/document.xml" in archive.namelist():
            count_in_member(
                archive,
                "word/document.xml",
                (b"<w:p>", b"<w:p ", b"<w:p/", b"<w:tc>", b"<w:tc "),
                PartCounter(limits, "paragraphs and table cells"),
            )
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
