"""Embedding models: the bundled MiniLM and GGUF embedders, and the factory that picks one.

They implement :class:`luodi.embedding.Embedder`, which lives outside the engine so that
knowledge bases can take an embedder without importing the engine.
"""

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
    "LlamaCppEmbedder",
    "MiniLMEmbedder",
    "Pooling",
    "build_embedder",
    "minilm_model_dir",
]
