"""Settings of the ``embeddings`` section: the model behind ``/v1/embeddings``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

__all__ = ["EmbeddingSettings"]


class EmbeddingSettings(BaseModel):
    """The embedding model served on ``/v1/embeddings`` and used to index knowledge bases."""

    model: str = "minilm"
    """``minilm`` (bundled all-MiniLM-L6-v2) or the path of an embedding GGUF."""

    backend: Literal["onnxruntime", "numpy"] = "onnxruntime"
    """What runs MiniLM: ``onnxruntime`` (an ONNX graph built from the bundled weights at
    load, fused CPU kernels) or ``numpy`` (the plain reference). GGUFs run in llama.cpp."""

    precision: Literal["int8", "fp32"] | None = None
    """MiniLM's weight matrices: ``int8`` (onnxruntime only; about 2x fp32's chunks/s,
    vectors within cosine 0.99 of fp32's, 0.995 measured) or ``fp32`` (onnxruntime's equal
    numpy's to 1e-5). None: int8 on onnxruntime, fp32 on numpy. Indexes built with any of
    them stay valid with the others (docs/knowledge.md, "Embedding speed")."""

    served_name: str | None = None
    """Name in the API's ``model`` field. None: ``all-minilm-l6-v2``, or the GGUF's file stem."""

    batch_size: int = Field(default=32, ge=1, le=1024)
    """Most texts per forward pass (MiniLM also keeps a pass within 512 padded word pieces)."""

    n_threads: int | None = Field(default=None, ge=1)
    """CPU threads: llama.cpp's for a GGUF (None: its default). MiniLM: threads embedding
    batches side by side, the calling one and ones it starts, so they share its OS priority
    (None: one per CPU for onnxruntime, 1 for numpy)."""

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
        minilm_only = sorted({"backend", "precision"} & self.model_fields_set)
        if is_gguf and minilm_only:
            raise ValueError(
                f"embeddings.{minilm_only[0]} applies to model 'minilm' only, "
                f"not embeddings.model={self.model!r} (a GGUF's precision is its file's)"
            )
        if self.backend == "numpy" and self.precision == "int8":
            raise ValueError(
                "embeddings.precision='int8' needs embeddings.backend='onnxruntime', not 'numpy'"
            )
        if not is_gguf and self.pooling is not None:
            raise ValueError(
                f"embeddings.pooling={self.pooling!r} applies to a GGUF model only, "
                f"not embeddings.model='minilm'"
            )
        return self
