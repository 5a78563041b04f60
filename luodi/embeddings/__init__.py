"""Embedding models: the ``Embedder`` protocol, the bundled MiniLM and GGUF embedders.

A package of its own, beside ``engine`` rather than inside it: ``/v1/embeddings`` (api)
and knowledge-base indexing (knowledge) both use it, and it depends only on ``config``
and ``errors``, so a library such as ``knowledge`` can take an ``Embedder`` without
importing the generation engine.
"""

from luodi.embeddings.base import Embedder, EmbeddingMatrix
from luodi.embeddings.factory import BUILTIN_EMBEDDERS, build_embedder
from luodi.embeddings.llamacpp import LlamaCppEmbedder, Pooling
from luodi.embeddings.minilm import (
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
