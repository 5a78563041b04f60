"""Why a document could not be loaded: unreadable, or over a parse limit."""

from __future__ import annotations

from luodi.errors import InvalidRequestError

__all__ = ["DocumentLimitError", "DocumentLoadError"]


class DocumentLoadError(InvalidRequestError):
    """A file that cannot be read as its format; the message names the file."""

    default_code = "unreadable_document"


class DocumentLimitError(DocumentLoadError):
    """A document over one of the parse limits; the message names the setting."""

    default_code = "document_limit_exceeded"
