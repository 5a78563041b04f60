"""Settings of the ``embeddings`` section: the model behind ``/v1/embeddings``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

__all__ = ["EmbeddingSettings"]


class EmbeddingSettings(BaseModel):
    """The embedding model served on ``/v1/embeddings`` and used to index knowledge bases."""

    model: str = "minilm"
    """``minilm`` (bundled all-MiniLM-L6-v2, pure numpy) or the path of an embedding GGUF."""

    served_name: str | None = None
    """Name in the API's ``model`` field. None: ``all-minilm-l6-v2``, or the GGUF's file stem."""

    batch_size: int = Field(default=32, ge=1, le=1024)
    """Texts embedded per forward pass."""

    n_threads: int | None = Field(default=None, ge=1)
    """CPU threads: llama.cpp's for a GGUF (None: its default); BLAS threads for MiniLM (None: 1,
    as OpenBLAS threads busy-wait and one is fastest on a shared machine)."""

    max_tokens: int = Field(default=512, ge=16, le=32768)
    """Tokens per input of a GGUF embedder (its context); MiniLM is fixed at 256."""

    pooling: Literal["mean", "cls", "last"] | None = None
    """Pooling of a GGUF embedder: bge-m3 ``cls``, Qwen3-Embedding ``last``. None: the GGUF's."""

    @model_validator(mode="after")
    def _check(self) -> EmbeddingSettings:
        is_gguf = self.model != "minilm"
        if is_gguf and not self.model.endswith(".gguf"):
            raise ValueError(
                f"embeddings.model={self.model!r} must be 'minilm' or a path ending in .gguf"
            )
        if not is_gguf and self.pooling is not None:
            raise ValueError(
                f"embeddings.pooling={self.pooling!r} applies to a GGUF model only, "
                f"not embeddings.model='minilm'"
            )
        return self
