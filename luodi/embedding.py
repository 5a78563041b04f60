"""The ``Embedder`` protocol: text in, L2-normalised float32 vectors out.

Every embedding model luodi serves (``/v1/embeddings``) or uses to index a
knowledge base implements this one interface, so a production GGUF (bge-m3,
Qwen3-Embedding) replaces the bundled MiniLM without touching a caller.

The protocol lives here, outside ``engine``, and imports nothing of luodi: the
implementations and the factory are in ``luodi.engine.embeddings`` (the GGUF embedder
shares the engine's llama.cpp set-up), while ``knowledge`` and the API's routes need
only this contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = ["Embedder", "EmbeddingMatrix"]

EmbeddingMatrix = NDArray[np.float32]
"""Shape ``(n_texts, dim)``; every row has L2 norm 1 (a zero row only for an empty model output)."""


@runtime_checkable
class Embedder(Protocol):
    """A text embedding model.

    Implementations are synchronous and CPU- or GPU-bound: async callers run
    ``embed`` in a worker thread. They are safe to call from several threads.
    """

    @property
    def name(self) -> str:
        """The name clients pass in the ``model`` field of ``/v1/embeddings``."""
        ...

    @property
    def dim(self) -> int:
        """Length of every vector ``embed`` returns."""
        ...

    @property
    def max_tokens(self) -> int:
        """Most model tokens of one input; longer inputs are truncated, never rejected."""
        ...

    def tokenize(self, text: str) -> list[int]:
        """The model's token ids of ``text``, without special tokens and untruncated."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Untruncated model token counts (without special tokens), one per text."""
        ...

    def embed(self, texts: Sequence[str]) -> EmbeddingMatrix:
        """Embed ``texts`` in order; returns float32 rows of unit L2 norm."""
        ...
