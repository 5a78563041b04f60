"""PDF: the text layer of each page, split into paragraphs (scanned PDFs need OCR first)."""

from __future__ import annotations

import io

from pypdf import PdfReader

from luodi.knowledge.loaders.text import load_text
from luodi.knowledge.types import Block

__all__ = ["load_pdf"]


def load_pdf(data: bytes) -> list[Block]:
    """Paragraph blocks of every page's extracted text."""
    reader = PdfReader(io.BytesIO(data))
    blocks: list[Block] = []
    for page in reader.pages:
        blocks.extend(load_text((page.extract_text() or "").encode()))
    return blocks
