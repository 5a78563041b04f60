"""PDF: the text layer of each page, split into paragraphs (scanned PDFs need OCR first)."""

from __future__ import annotations

import io

from pypdf import PdfReader

from luodi.knowledge.loaders.limits import ParseLimits, PartCounter
from luodi.knowledge.loaders.text import load_text
from luodi.knowledge.types import Block

__all__ = ["load_pdf"]


def load_pdf(data: bytes, limits: ParseLimits) -> list[Block]:
    """Paragraph blocks of every page's extracted text.

    The page count is the one the page tree declares, checked before any page is read.
    """
    reader = PdfReader(io.BytesIO(data))
    pages = PartCounter(limits, "pages")
    pages.add(len(reader.pages))
    blocks: list[Block] = []
    for page in reader.pages:
        blocks.extend(load_text((page.extract_text() or "").encode(), limits))
    return blocks
