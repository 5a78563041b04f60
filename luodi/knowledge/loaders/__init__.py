"""Document loaders, one module per format, chosen by file suffix."""

from collections.abc import Mapping
from types import MappingProxyType

from luodi.knowledge.loaders.base import Loader, load_document
from luodi.knowledge.loaders.docx import load_docx
from luodi.knowledge.loaders.errors import DocumentLimitError, DocumentLoadError
from luodi.knowledge.loaders.html import load_html
from luodi.knowledge.loaders.limits import ParseLimits
from luodi.knowledge.loaders.markdown import load_markdown
from luodi.knowledge.loaders.pdf import load_pdf
from luodi.knowledge.loaders.table import load_csv, load_xlsx
from luodi.knowledge.loaders.text import load_text

__all__ = [
    "LOADERS",
    "DocumentLimitError",
    "DocumentLoadError",
    "Loader",
    "ParseLimits",
    "load_document",
]

LOADERS: Mapping[str, Loader] = MappingProxyType(
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
