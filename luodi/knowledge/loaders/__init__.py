"""Document loaders, one module per format, chosen by file suffix."""

from collections.abc import Callable, Mapping
from types import MappingProxyType

from luodi.knowledge.loaders.base import DocumentLoadError, Loader, load_document
from luodi.knowledge.loaders.docx import load_docx
from luodi.knowledge.loaders.html import load_html
from luodi.knowledge.loaders.markdown import load_markdown
from luodi.knowledge.loaders.pdf import load_pdf
from luodi.knowledge.loaders.table import load_csv, load_xlsx
from luodi.knowledge.loaders.text import load_text
from luodi.knowledge.types import Block

__all__ = ["LOADERS", "DocumentLoadError", "Loader", "load_document"]

LOADERS: Mapping[str, Callable[[bytes], list[Block]]] = MappingProxyType(
    {
        ".txt": load_text,
        ".text": load_text,
        ".md": load_markdown,
        ".markdown": load_markdown,
        ".html": load_html,
        ".htm": load_html,
        ".pdf": load_pdf,
        ".docx": load_docx,
        ".csv": load_csv,
        ".xlsx": load_xlsx,
    }
)
"""The built-in loaders by lower-case suffix."""
