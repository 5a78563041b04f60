"""Embedding models: the ``Embedder`` protocol, the bundled MiniLM and GGUF embedders."""

from luodi.engine.embeddings.base import Embedder, EmbeddingMatrix
from luodi.engine.embeddings.factory import BUILTIN_EMBEDDERS, build_embedder
from luodi.engine.embeddings.llamacpp import LlamaCppEmbedder, Pooling
from luodi.engine.embeddings.minilm import (
    MINILM_INSTALL,
    MINILM_NAME,
    MiniLMEmbedder,
    minilm_model_dir,
)

__all__ = [
    "BUILTIN_EMBEDDERS",
    "MINILM_INSTALL",
    "MINILM_NAME",
    "Embedder",
    "EmbeddingMatrix",
    "LlamaCppEmbedder",
    "MiniLMEmbedder",
    "Pooling",
    "build_embedder",
    "minilm_model_dir",
]
