"""One MiniLM embedder per test session (loading it takes about a second)."""

from __future__ import annotations

import pytest

from luodi.engine.embeddings import MiniLMEmbedder


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    """The bundled all-MiniLM-L6-v2."""
    return MiniLMEmbedder()
