"""Build the configured ``Embedder``: a registry of named models plus GGUF paths."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from luodi.config.embeddings import EmbeddingSettings
from luodi.embedding import Embedder
from luodi.engine.embeddings.llamacpp import LlamaCppEmbedder
from luodi.engine.embeddings.minilm import MINILM_NAME, MiniLMEmbedder

__all__ = ["BUILTIN_EMBEDDERS", "build_embedder"]


def _minilm(settings: EmbeddingSettings) -> Embedder:
    return MiniLMEmbedder(
        name=settings.served_name or MINILM_NAME,
        batch_size=settings.batch_size,
        n_threads=settings.n_threads,
        backend=settings.backend,
        precision=settings.precision or ("int8" if settings.backend == "onnxruntime" else "fp32"),
    )


BUILTIN_EMBEDDERS: Mapping[str, Callable[[EmbeddingSettings], Embedder]] = MappingProxyType(
    {"minilm": _minilm}
)
"""Models known by name in ``embeddings.model``; anything else is a GGUF path."""


def build_embedder(
    settings: EmbeddingSettings,
    registry: Mapping[str, Callable[[EmbeddingSettings], Embedder]] = BUILTIN_EMBEDDERS,
) -> Embedder:
    """The embedder ``settings`` describe.

    Args:
        settings: the ``embeddings`` section.
        registry: named models; a test or plugin can pass its own.

    Raises:
        ModelLoadError: the weights are missing (the message says how to install them)
            or cannot be loaded.
    """
    factory = registry.get(settings.model)
    if factory is not None:
        return factory(settings)
    return LlamaCppEmbedder(
        Path(settings.model).expanduser(),
        name=settings.served_name,
        pooling=settings.pooling,
        max_tokens=settings.max_tokens,
        batch_size=settings.batch_size,
        n_threads=settings.n_threads,
    )
