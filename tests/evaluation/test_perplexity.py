"""Perplexity through luodi: chunking, and a scrambled text reads worse than the original."""

from __future__ import annotations

import random

import pytest

from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.evaluation.endpoint import Endpoint
from luodi.evaluation.perplexity import chunks, perplexity
from luodi.evaluation.scoring import ForcedTokenScorer
from tests.conftest import LiveServer

TEXT = (
    "The lighthouse stood at the end of the harbour wall.\n"
    "Every night its keeper climbed the stairs and lit the lamp.\n"
    "Ships passing in the dark saw the light and kept away from the rocks.\n"
)


def test_chunks_pack_lines_and_cut_long_ones() -> None:
    assert chunks("a\nb\nc\n", 4) == ["a\nb\n", "c\n"]
    assert chunks("x" * 10, 4) == ["xxxx", "xxxx", "xx"]
    assert chunks("\n\n", 4) == []


@pytest.mark.model
async def test_scrambled_text_has_higher_perplexity(
    live_server: LiveServer, engine: LlamaCppEngine
) -> None:
    words = TEXT.split()
    random.Random(0).shuffle(words)
    scrambled = " ".join(words) + "\n"
    endpoint = Endpoint(live_server.url, live_server.model, api_key=live_server.api_key)

    def tokenize(text: str, special: bool) -> list[int]:
        return engine.tokenize(text, add_special=special)

    scorer = ForcedTokenScorer(endpoint, tokenize)
    try:
        plain = await perplexity(scorer, TEXT)
        mixed = await perplexity(scorer, scrambled)
    finally:
        await endpoint.aclose()
    assert plain.bytes == len(TEXT.encode()) and plain.words == len(words)
    assert 1.0 < plain.byte_perplexity < mixed.byte_perplexity
    assert plain.word_perplexity < mixed.word_perplexity
