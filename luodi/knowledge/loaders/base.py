"""The ``Loader`` protocol and the registry that picks one by file suffix."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Protocol

from luodi.knowledge.loaders.errors import DocumentLimitError, DocumentLoadError
from luodi.knowledge.loaders.limits import ParseLimits
from luodi.knowledge.types import Block

__all__ = ["DocumentLimitError", "DocumentLoadError", "Loader", "load_document"]


class Loader(Protocol):
    """Turns a file's bytes into structural blocks in reading order, within ``limits``."""

    def __call__(self, data: bytes, limits: ParseLimits) -> list[Block]: ...


def load_document(
    name: str,
    data: bytes,
    loaders: Mapping[str, Loader],
    limits: ParseLimits | None = None,
) -> list[Block]:
    """Blocks of the file ``name`` with content ``data``, in this process.

    Untrusted files go through ``isolation.parse_isolated`` instead, which runs this in
    a limited child process.

    Raises:
        DocumentLimitError: the file is over a parse limit; the message names it.
        DocumentLoadError: unknown suffix, or the loader failed; the message names the file.
    """
    suffix = PurePath(name).suffix.lower()
    loader = loaders.get(suffix)
    if loader is None:
        raise DocumentLoadError(f"{name}: unsupported file type {suffix or '(none)'}")
    try:
        blocks = loader(data, limits or ParseLimits())
    except DocumentLoadError as exc:
        if exc.message.startswith(f"{name}:"):
            raise
        raise type(exc)(f"{name}: {exc.message}") from exc
    except MemoryError:
        raise  # the isolated child reports it as the memory limit
    except Exception as exc:  # a parser's own error types vary by library; report, do not crash
        raise DocumentLoadError(f"{name}: cannot read as {suffix}: {exc}") from exc
    if not any(b.text.strip() for b in blocks):
        raise DocumentLoadError(f"{name}: no text found")
    return blocks
