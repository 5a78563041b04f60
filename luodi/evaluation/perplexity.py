"""Perplexity of a text file through an endpoint: the check that a quantised file still reads.

The text is cut at line ends into chunks of at most ``chunk_chars`` characters; each
chunk is scored as a continuation after nothing (the BOS alone) by either log-likelihood
scorer, and the sums are reported per byte and per word, as lm-eval reports wikitext:
``byte_perplexity``, ``bits_per_byte`` and ``word_perplexity``. They do not depend on
the tokenizer, so two models (or a Q8_0 and a Q4_K_M file of one) compare directly on
the same text. Chunks are independent: context does not run across them, which raises
the figure a little for every model alike.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from luodi.errors import ConfigError
from luodi.evaluation.scoring import ChoiceScorer

__all__ = ["PerplexityResult", "chunks", "perplexity"]


@dataclass(frozen=True, slots=True)
class PerplexityResult:
    chunks: int
    bytes: int
    words: int
    logprob: float
    byte_perplexity: float
    bits_per_byte: float
    word_perplexity: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def chunks(text: str, chunk_chars: int) -> list[str]:
    """Lines packed into chunks of at most ``chunk_chars`` (a longer line is cut)."""
    out: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line) > chunk_chars:
            if current:
                out.append(current)
                current = ""
            out.append(line[:chunk_chars])
            line = line[chunk_chars:]
        if len(current) + len(line) > chunk_chars and current:
            out.append(current)
            current = ""
        current += line
    if current.strip():
        out.append(current)
    return [c for c in out if c.strip()]


async def perplexity(
    scorer: ChoiceScorer,
    text: str,
    *,
    chunk_chars: int = 2000,
    on_chunk: Callable[[], None] | None = None,
) -> PerplexityResult:
    """Score every chunk; the per-byte and per-word figures over the whole text."""
    parts = chunks(text, chunk_chars)
    if not parts:
        raise ConfigError("the text is empty")

    async def one(part: str) -> float:
        score = await scorer.score("", part)
        if on_chunk is not None:
            on_chunk()
        return score.logprob

    total = sum(await asyncio.gather(*(one(p) for p in parts)))
    n_bytes = sum(len(p.encode("utf-8")) for p in parts)
    n_words = sum(len(p.split()) for p in parts)
    return PerplexityResult(
        chunks=len(parts),
        bytes=n_bytes,
        words=n_words,
        logprob=total,
        byte_perplexity=math.exp(-total / n_bytes),
        bits_per_byte=-total / (n_bytes * math.log(2)),
        word_perplexity=math.exp(-total / max(1, n_words)),
    )
