"""The ``Loader`` protocol and the registry that picks one by file suffix."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import PurePath
from typing import Protocol

from luodi.errors import InvalidRequestError
from luodi.knowledge.types import Block

__all__ = ["DocumentLoadError", "Loader", "load_document"]


class DocumentLoadError(InvalidRequestError):
    """A file that cannot be read as its format; the message names the file."""

    default_code = "unreadable_document"


class Loader(Protocol):
    """Turns a file's bytes into structural blocks in reading order."""

    def __call__(self, data: bytes) -> list[Block]: ...


def load_document(
    name: str, data: bytes, loaders: Mapping[str, Callable[[bytes], list[Block]]]
) -> list[Block]:
    """Blocks of the file ``name`` with content ``data``.

    Raises:
        DocumentLoadError: unknown suffix, or the loader failed; the message names the file.
    """
    suffix = PurePath(name).suffix.lower()
    loader = loaders.get(suffix)
    if loader is None:
        raise DocumentLoadError(f"{name}: unsupported file type {suffix or '(none)'}")
    try:
        blocks = loader(data)
    except DocumentLoadError:
        raise
    except Exception as exc:  # a parser's own error types vary by library; report, do not crash
        raise DocumentLoadError(f"{name}: cannot read as {suffix}: {exc}") from exc
    if not any(b.text.strip() for b in blocks):
        raise DocumentLoadError(f"{name}: no text found")
    return blocks
