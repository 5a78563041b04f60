"""Split a document's blocks into passages sized in the embedding model's tokens.

Rules, in order: a heading starts a new chunk and labels the chunks under it;
each CSV/XLSX row is a chunk of its own; lists and tables are kept whole when they
fit and otherwise split between lines; text is packed sentence by sentence, where
a sentence ends at 。！？；!?; or a full stop followed by a space, so a Chinese
sentence is never cut in the middle. Consecutive chunks of running text share up
to ``overlap`` tokens of whole sentences.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from luodi.knowledge.types import Block, Chunk

__all__ = ["Chunker", "split_sentences"]

_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|(?<=[.])(?=\s)|(?<=\n)")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, each keeping its closing punctuation."""
    return [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if s]


def _joiner(a: str, b: str) -> str:
    # No space between CJK characters; a space between Latin words.
    if a and b and (a[-1].isascii() and b[0].isascii()):
        return " "
    return ""


class Chunker:
    """Token-budgeted, structure-aware chunking.

    Args:
        count_tokens: the embedding model's token counter (``Embedder.count_tokens``).
        size: most tokens of one chunk (keep it below the embedder's ``max_tokens``).
        overlap: tokens of trailing sentences repeated at the start of the next chunk.
    """

    def __init__(
        self, count_tokens: Callable[[Sequence[str]], list[int]], size: int, overlap: int
    ) -> None:
        if overlap >= size:
            raise ValueError(f"overlap={overlap} must be smaller than size={size}")
        self._count = count_tokens
        self.size = size
        self.overlap = overlap

    def chunk(self, blocks: Sequence[Block]) -> list[Chunk]:
        """Chunks of ``blocks`` in reading order, positions numbered from 0."""
        out: list[Chunk] = []
        heading = ""
        pieces: list[tuple[str, int]] = []  # (sentence or line, tokens) of the open chunk

        def emit(items: list[tuple[str, int]]) -> None:
            if not items:
                return
            text = items[0][0]
            for piece, _ in items[1:]:
                text += _joiner(text, piece) + piece
            out.append(Chunk(len(out), text, heading, sum(n for _, n in items)))

        def close(keep_overlap: bool) -> None:
            nonlocal pieces
            emit(pieces)
            tail: list[tuple[str, int]] = []
            if keep_overlap and self.overlap:
                budget = self.overlap
                for piece, n in reversed(pieces):
                    if n > budget:
                        break
                    tail.insert(0, (piece, n))
                    budget -= n
            pieces = tail if len(tail) < len(pieces) else []

        for block in blocks:
            text = block.text.strip()
            if not text:
                continue
            if block.kind == "heading":
                close(keep_overlap=False)
                heading = text
                continue
            if block.kind == "row":
                close(keep_overlap=False)
                pieces = self._pack_lines([text])
                close(keep_overlap=False)
                continue
            if block.kind in ("list", "table"):
                total = self._count([text])[0]
                used = sum(n for _, n in pieces)
                if used and used + total > self.size:
                    close(keep_overlap=False)
                if total <= self.size:
                    pieces.append((text, total))
                    continue
                close(keep_overlap=False)
                for group in self._split_lines(text.split("\n")):
                    pieces = group
                    close(keep_overlap=False)
                continue
            sentences = split_sentences(text)
            for sentence, n in zip(sentences, self._count(sentences), strict=True):
                for part, m in self._fit(sentence, n):
                    if sum(k for _, k in pieces) + m > self.size:
                        close(keep_overlap=True)
                        if sum(k for _, k in pieces) + m > self.size:
                            pieces = []
                    pieces.append((part, m))
        close(keep_overlap=False)
        return out

    def _pack_lines(self, lines: list[str]) -> list[tuple[str, int]]:
        return [(line, n) for line, n in zip(lines, self._count(lines), strict=True)]

    def _split_lines(self, lines: list[str]) -> list[list[tuple[str, int]]]:
        groups: list[list[tuple[str, int]]] = [[]]
        for line, n in self._pack_lines([ln for ln in lines if ln.strip()]):
            for part, m in self._fit(line, n):
                if groups[-1] and sum(k for _, k in groups[-1]) + m > self.size:
                    groups.append([])
                groups[-1].append((part, m))
        return [g for g in groups if g]

    def _fit(self, text: str, n: int) -> list[tuple[str, int]]:
        """``text`` as is when it fits, else cut by characters into parts that fit."""
        if n <= self.size:
            return [(text, n)]
        parts = max(2, -(-n // self.size) + 1)
        step = -(-len(text) // parts)
        pieces = [text[i : i + step] for i in range(0, len(text), step)]
        out: list[tuple[str, int]] = []
        for piece, m in zip(pieces, self._count(pieces), strict=True):
            out.extend(self._fit(piece, m) if m > self.size and len(piece) > 1 else [(piece, m)])
        return out
