"""What one document may cost to parse, and the checks that run before a parser does.

A small file can expand enormously: a 10 KB DOCX holds a million empty paragraphs, an
XLSX declares a sheet of a million rows by sixteen thousand columns, a PDF declares a
billion pages. ``ParseLimits`` bounds each way a document multiplies work; ``check_zip``
refuses an Office archive by its directory before anything is decompressed, and
``PartCounter`` stops a loader at ``max_parts`` paragraphs, cells or pages. The parser
itself runs in a child process with CPU and memory limits (``isolation.py``), which
catches whatever these counts miss.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from luodi.config.knowledge import KnowledgeSettings
from luodi.knowledge.loaders.errors import DocumentLimitError, DocumentLoadError

__all__ = ["DocumentLimitError", "ParseLimits", "PartCounter", "check_zip", "count_in_member"]

_MB = 1024 * 1024
# Members smaller than this are not held to the ratio: tiny XML parts compress well.
_RATIO_FLOOR = _MB


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds on parsing one document (the ``knowledge`` settings of the same names)."""

    max_parts: int = 200_000
    max_unzipped_mb: float = 200.0
    max_zip_ratio: float = 100.0
    cpu_s: int = 30
    memory_mb: int = 1024

    @classmethod
    def from_settings(cls, settings: KnowledgeSettings) -> ParseLimits:
        """The limits the ``knowledge`` section sets."""
        return cls(
            max_parts=settings.max_parts,
            max_unzipped_mb=settings.max_unzipped_mb,
            max_zip_ratio=settings.max_zip_ratio,
            cpu_s=settings.parse_cpu_s,
            memory_mb=settings.parse_memory_mb,
        )


class PartCounter:
    """Counts paragraphs, cells or pages; raises past ``max_parts``."""

    def __init__(self, limits: ParseLimits, what: str) -> None:
        self._max = limits.max_parts
        self._what = what
        self.count = 0

    def add(self, n: int = 1) -> None:
        """Count ``n`` more parts.

        Raises:
            DocumentLimitError: more than ``max_parts`` in all.
        """
        self.count += n
        if self.count > self._max:
            raise DocumentLimitError(
                f"more than {self._max} {self._what} (knowledge.max_parts={self._max})"
            )


def check_zip(data: bytes, limits: ParseLimits) -> None:
    """Refuse an Office archive whose declared sizes exceed the limits.

    ``zipfile`` stops reading a member at its declared size (and fails its CRC when the
    data is longer), so the declared sizes bound what a parser can decompress.

    Raises:
        DocumentLimitError: total size over ``max_unzipped_mb``, or a member (or the
            whole) expanding more than ``max_zip_ratio`` times.
        DocumentLoadError: not a zip archive.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise DocumentLoadError(f"not an Office file: {exc}") from exc
    total = compressed = 0
    ratio = limits.max_zip_ratio
    for info in members:
        total += info.file_size
        compressed += info.compress_size
        if info.file_size > _RATIO_FLOOR and info.file_size > ratio * max(info.compress_size, 1):
            raise DocumentLimitError(
                f"{info.filename} expands {info.file_size / max(info.compress_size, 1):.0f} "
                f"times (knowledge.max_zip_ratio={ratio:g})"
            )
        if total > limits.max_unzipped_mb * _MB:
            raise DocumentLimitError(
                f"expands to more than {limits.max_unzipped_mb:g} MB "
                f"(knowledge.max_unzipped_mb={limits.max_unzipped_mb:g})"
            )
    if total > _RATIO_FLOOR and total > ratio * max(compressed, 1):
        raise DocumentLimitError(
            f"expands {total / max(compressed, 1):.0f} times (knowledge.max_zip_ratio={ratio:g})"
        )


def count_in_member(
    archive: zipfile.ZipFile, member: str, needles: tuple[bytes, ...], counter: PartCounter
) -> None:
    """Count occurrences of ``needles`` in a member, streamed, before a parser builds a tree.

    A needle split across two reads is missed; the count is a floor, which is enough
    to refuse a document of millions of elements before lxml builds them all.
    """
    with archive.open(member) as stream:
        while chunk := stream.read(1 << 20):
            counter.add(sum(chunk.count(n) for n in needles))
