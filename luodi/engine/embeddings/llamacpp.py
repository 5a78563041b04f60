"""Embedding GGUF models (bge-m3, Qwen3-Embedding, ...) through llama-cpp-python.

Uses the high-level ``llama_cpp.Llama`` in embedding mode: one context owned by
this object, guarded by a lock because a llama.cpp context is not re-entrant, and
decoding only on a worker thread of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from luodi.embedding import EmbeddingMatrix
from luodi.errors import ModelLoadError

__all__ = ["LlamaCppEmbedder", "Pooling"]

Pooling = Literal["mean", "cls", "last"]
"""How token vectors become one text vector; None leaves it to the GGUF's metadata."""


def _pooling_type(pooling: Pooling | None) -> int:
    import llama_cpp

    return {
        None: llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED,
        "mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN,
        "cls": llama_cpp.LLAMA_POOLING_TYPE_CLS,
        "last": llama_cpp.LLAMA_POOLING_TYPE_LAST,
    }[pooling]


class LlamaCppEmbedder:
    """An embedding GGUF served by llama.cpp.

    Args:
        model_path: the GGUF file.
        name: served model name; None: the file name without ``.gguf``.
        pooling: pooling override (bge-m3 uses ``cls``, Qwen3-Embedding ``last``);
            None: what the GGUF declares.
        max_tokens: tokens per input (and the context size); longer inputs are truncated.
        batch_size: texts handed to llama.cpp per call.
        n_threads: CPU threads; None: llama.cpp's default.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        name: str | None = None,
        pooling: Pooling | None = None,
        max_tokens: int = 512,
        batch_size: int = 32,
        n_threads: int | None = None,
    ) -> None:
        import llama_cpp

        from luodi.engine.llamacpp.cpu_buffers import extra_buffers_usable, high_level_model_params

        if not model_path.is_file():
            raise ModelLoadError(f"embedding model not found: {model_path}")
        usable = extra_buffers_usable(batch_invariant=False)

        def load() -> llama_cpp.Llama:
            with high_level_model_params(use_extra_bufts=usable):
                return llama_cpp.Llama(
                    model_path=str(model_path),
                    embedding=True,
                    pooling_type=_pooling_type(pooling),
                    n_ctx=max_tokens,
                    # Non-causal encoders need a whole input in one micro-batch.
                    n_batch=max_tokens,
                    n_ubatch=max_tokens,
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    verbose=False,
                )

        # ggml's OpenMP build keeps a worker team for each thread that ever decoded, and
        # every extra team throttles the serving engine's barriers: all decodes of this
        # model run on one thread of its own, whichever pool thread asks.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="luodi-embed")
        try:
            self._llm = self._worker.submit(load).result()
        except (ValueError, RuntimeError, OSError) as exc:
            self._worker.shutdown()
            raise ModelLoadError(f"cannot load embedding model {model_path}: {exc}") from exc
        self._name = name or model_path.name.removesuffix(".gguf")
        self._max_tokens = max_tokens
        self._batch_size = batch_size
        self._dim = int(self._llm.n_embd())
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """Served model name."""
        return self._name

    @property
    def dim(self) -> int:
        """The model's embedding width (``n_embd``)."""
        return self._dim

    @property
    def max_tokens(self) -> int:
        """Tokens per input; the rest is cut off."""
        return self._max_tokens

    def tokenize(self, text: str) -> list[int]:
        """Model token ids of ``text`` without BOS, untruncated."""
        with self._lock:
            return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Untruncated token counts, one per text."""
        return [len(self.tokenize(t)) for t in texts]

    def embed(self, texts: Sequence[str]) -> EmbeddingMatrix:
        """L2-normalised float32 vectors, one row per text, in input order."""
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for start in range(0, len(texts), self._batch_size):
            chunk = [t if t else " " for t in texts[start : start + self._batch_size]]
            with self._lock:
                rows = self._worker.submit(
                    self._llm.embed, chunk, normalize=False, truncate=True
                ).result()
            out[start : start + len(chunk)] = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.asarray(out / np.maximum(norms, np.float32(1e-12)), dtype=np.float32)

    def close(self) -> None:
        """Free the llama.cpp model and context."""
        with self._lock:
            self._llm.close()
        self._worker.shutdown()
