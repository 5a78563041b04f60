"""Mean-pooled hidden states of a causal GGUF, computed only as deep as they are asked for.

A chat model's intermediate layers are a multilingual sentence representation the bundled
English embedder lacks (the support assistant's intent classifier learns from them). A
layer's output is read in llama.cpp's graph-evaluation callback (``cb_eval``: the tensor
``l_out-<layer>``), and the callback stops the graph there, so neither the deeper layers
nor the output projection run. On Gemma-3-270M the output projection over its 262k-token
vocabulary is most of a forward pass: layer 6 of 18 costs about a tenth of a full one.

The model is a second llama.cpp instance of the same file, loaded without repacked weight
buffers, so its weights are the file's pages the serving engine maps as well, not a copy.
Texts asked for at the same time from several threads are read in one batched decode, one
sequence each (at 16 concurrent callers one text alone costs 20 ms on one thread, eight
together 7 ms each). Only a batch's last token is an output unless the model's last layer
is asked for: the graph stops before the logits, but llama.cpp would still copy a
vocabulary-wide row per output.
"""

from __future__ import annotations

import ctypes
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import llama_cpp
import numpy as np
from numpy.typing import NDArray

from luodi.engine.llamacpp.model import (
    check_gguf_file,
    ensure_backend,
    select_kernels,
    tokenize_with,
)
from luodi.errors import ModelLoadError
from luodi.models.native_libraries import shared_library

__all__ = ["HiddenStates"]


def _ggml_base() -> ctypes.CDLL:
    lib = shared_library("ggml-base")
    lib.ggml_get_name.restype = ctypes.c_char_p
    lib.ggml_get_name.argtypes = [ctypes.c_void_p]
    lib.ggml_nbytes.restype = ctypes.c_size_t
    lib.ggml_nbytes.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_tensor_get.restype = None
    lib.ggml_backend_tensor_get.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_size_t,
    ]
    return lib


@dataclass
class _Job:
    """One caller's texts: their token ids, the layers asked, the rows found so far."""

    ids: list[list[int]]
    layers: tuple[int, ...]
    rows: dict[int, NDArray[np.float32]] = field(default_factory=dict)
    done: Future[dict[int, NDArray[np.float32]]] = field(default_factory=Future)


class HiddenStates:
    """Per-text means of a causal model's layer outputs (BOS excluded), float32.

    Args:
        model_path: the GGUF (a decrypted model's memfd path works while it is open).
        n_threads: CPU threads of its forward passes; 1 starts no OpenMP worker team
            beside the serving engine's.
        max_tokens: tokens read per text; the rest is cut off.
        max_texts: most texts (sequences) in one batched decode.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        n_threads: int = 1,
        max_tokens: int = 128,
        max_texts: int = 16,
    ) -> None:
        check_gguf_file(model_path)
        ensure_backend()
        self._ggml = _ggml_base()
        self._max_tokens = max_tokens
        self._max_texts = max_texts
        self._budget = max(512, max_tokens)
        """Tokens of one decode: one micro-batch, so each layer is captured once."""
        self._wanted: dict[bytes, int] = {}
        self._deepest = -1
        self._captured: dict[int, list[NDArray[np.float32]]] = {}
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._callback = llama_cpp.ggml_backend_sched_eval_callback(self._on_tensor)
        loaded: Future[None] = Future()
        # Every decode of this context runs on one thread of its own (see LlamaCppEmbedder).
        self._thread = threading.Thread(
            target=self._serve, args=(model_path, n_threads, loaded), name="luodi-states"
        )
        self._thread.daemon = True
        self._thread.start()
        loaded.result()

    # -- the worker thread ------------------------------------------------------------

    def _serve(self, path: Path, n_threads: int, loaded: Future[None]) -> None:
        try:
            self._load(path, n_threads)
        except BaseException as exc:
            loaded.set_exception(exc)
            return
        loaded.set_result(None)
        try:
            while (job := self._jobs.get()) is not None:
                jobs = [job]
                while True:  # whoever asked meanwhile is read in the same decodes
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._jobs.put(None)
                        break
                    jobs.append(more)
                self._serve_jobs(jobs)
        finally:
            self._free()
            closed = ModelLoadError("the hidden-state reader is closed")
            while True:  # whoever asked while it closed gets an answer, not a hang
                try:
                    left = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if left is not None and not left.done.done():
                    left.done.set_exception(closed)

    def _load(self, path: Path, n_threads: int) -> None:
        # The engine's batch-invariant kernels (docs/architecture.md): a text reads the
        # same alone or beside others, so an utterance's intent does not depend on load.
        select_kernels(batch_invariant=True)
        mparams = llama_cpp.llama_model_default_params()
        mparams.use_mmap = True
        mparams.use_extra_bufts = False  # share the file's pages; a repacked copy would not
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        if not model:
            raise ModelLoadError(f"llama.cpp could not load {path} for its hidden states")
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = self._budget
        cparams.n_seq_max = self._max_texts
        cparams.kv_unified = True  # a text may take any cells: the cache is cleared per decode
        cparams.n_threads = cparams.n_threads_batch = n_threads
        cparams.type_k = cparams.type_v = llama_cpp.GGML_TYPE_Q8_0
        cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        cparams.no_perf = True
        cparams.cb_eval = self._callback
        cparams.cb_eval_user_data = None
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            llama_cpp.llama_model_free(model)
            raise ModelLoadError(f"llama.cpp could not create a context for {path}")
        self._model = model
        self._ctx = ctx
        self._memory = llama_cpp.llama_get_memory(ctx)
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self._bos = int(llama_cpp.llama_vocab_bos(self._vocab))
        self.n_layer = int(llama_cpp.llama_model_n_layer(model))
        self.n_embd = int(llama_cpp.llama_model_n_embd(model))
        self._batch = llama_cpp.llama_batch_init(self._budget, 0, 1)

    def _free(self) -> None:
        if getattr(self, "_ctx", None):
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            llama_cpp.llama_model_free(self._model)
            self._ctx = None

    def _serve_jobs(self, jobs: list[_Job]) -> None:
        by_layers: dict[tuple[int, ...], list[tuple[_Job, int]]] = {}
        for job in jobs:
            by_layers.setdefault(job.layers, []).extend((job, i) for i in range(len(job.ids)))
        for layers, work in by_layers.items():
            owners = list({id(job): job for job, _ in work}.values())
            try:
                start = 0
                while start < len(work):
                    end, tokens = start, 0
                    while (
                        end < len(work)
                        and end - start < self._max_texts
                        and tokens + len(work[end][0].ids[work[end][1]]) <= self._budget
                    ):
                        tokens += len(work[end][0].ids[work[end][1]])
                        end += 1
                    self._decode(work[start:end], layers)
                    start = end
            except BaseException as exc:
                for job in owners:
                    job.done.set_exception(exc)
                continue
            for job in owners:
                job.done.set_result(job.rows)

    # -- the graph callback (on the worker thread, inside llama_decode) -----------------

    def _on_tensor(self, tensor: ctypes.c_void_p, ask: bool, _user: ctypes.c_void_p) -> bool:
        layer = self._wanted.get(self._ggml.ggml_get_name(tensor) or b"")
        if ask:
            return layer is not None
        if layer is None:  # not asked for: keep computing
            return True
        size = int(self._ggml.ggml_nbytes(tensor))
        rows = np.empty(size // 4, dtype=np.float32)
        self._ggml.ggml_backend_tensor_get(tensor, rows.ctypes.data, 0, size)
        self._captured.setdefault(layer, []).append(rows.reshape(-1, self.n_embd))
        # False ends the graph here: nothing deeper (nor the output projection) runs.
        return layer != self._deepest

    # -- encoding -------------------------------------------------------------------

    def _token_ids(self, text: str) -> list[int]:
        # On the caller's thread; BOS where the vocabulary asks for it.
        ids = tokenize_with(self._vocab, text, parse_special=False)
        return ids[: self._max_tokens] or [self._bos]

    def _decode(self, work: list[tuple[_Job, int]], layers: tuple[int, ...]) -> None:
        """One batched decode of ``work``'s texts, one sequence each, to the deepest layer."""
        self._wanted = {f"l_out-{layer}".encode(): layer for layer in layers}
        self._deepest = max(layers)
        # The last layer keeps output rows only (llama.cpp drops the rest before it).
        every_output = self._deepest == self.n_layer - 1
        llama_cpp.llama_memory_clear(self._memory, True)
        batch, k, spans = self._batch, 0, []
        for seq, (job, index) in enumerate(work):
            ids = job.ids[index]
            spans.append((k, k + len(ids)))
            for pos, token in enumerate(ids):
                batch.token[k] = token
                batch.pos[k] = pos
                batch.n_seq_id[k] = 1
                batch.seq_id[k][0] = seq
                batch.logits[k] = every_output
                k += 1
        batch.logits[k - 1] = True
        batch.n_tokens = k
        self._captured = {}
        if llama_cpp.llama_decode(self._ctx, batch) != 0:
            raise ModelLoadError("llama.cpp failed to compute hidden states")
        states = {layer: np.concatenate(self._captured[layer]) for layer in layers}
        for (job, index), (lo, hi) in zip(work, spans, strict=True):
            # BOS is an attention sink whose state is the same for every text.
            first = lo + 1 if self._add_bos and hi - lo > 1 else lo
            for layer in layers:
                if layer not in job.rows:
                    job.rows[layer] = np.zeros((len(job.ids), self.n_embd), dtype=np.float32)
                job.rows[layer][index] = states[layer][first:hi].mean(axis=0)

    # -- the API ----------------------------------------------------------------------

    def pooled(self, texts: Sequence[str], layers: Sequence[int]) -> dict[int, NDArray[np.float32]]:
        """Each layer's (len(texts), n_embd) mean states; one pass per text, as deep as
        the deepest layer asked for. Layers count from 0 to ``n_layer - 1``."""
        bad = [layer for layer in layers if not 0 <= layer < self.n_layer]
        if bad or not layers:
            raise ValueError(f"layers must be in 0..{self.n_layer - 1}, not {list(layers)}")
        if not self._thread.is_alive():
            raise ModelLoadError("the hidden-state reader is closed")
        order = tuple(sorted(set(layers)))
        if not texts:
            return {layer: np.zeros((0, self.n_embd), dtype=np.float32) for layer in order}
        job = _Job([self._token_ids(t) for t in texts], order)
        self._jobs.put(job)
        return job.done.result()

    def close(self) -> None:
        """Free the model and its context (after the texts already asked for)."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
