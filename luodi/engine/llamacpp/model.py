"""The llama.cpp model and context, through llama-cpp-python's low-level C API.

Only the engine thread calls into an instance after start-up: llama.cpp contexts
are not thread-safe, and the engine's design keeps them on one thread.
"""

from __future__ import annotations

import ctypes
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import llama_cpp
import numpy as np

from luodi.engine.llamacpp.cpu_buffers import extra_buffers_usable
from luodi.errors import InvalidRequestError, ModelLoadError

__all__ = [
    "ContextParams",
    "LlamaModel",
    "check_gguf_file",
    "ensure_backend",
    "quantization_name",
    "select_kernels",
    "tokenize_with",
]

log = logging.getLogger(__name__)

_QUANT_NAMES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 32: "BF16",
}  # fmt: skip

_GGUF_MAGIC = b"GGUF"
_backend_ready = False


def _log_callback(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    # llama.cpp is chatty at load, and its failures surface as luodi errors that say
    # what to do; its own lines stay at debug.
    message = text.decode("utf-8", errors="replace").rstrip()
    if message:
        log.debug("llama.cpp[%d]: %s", level, message)


_LOG_CALLBACK = llama_cpp.llama_log_callback(_log_callback)


def ensure_backend() -> None:
    """Route llama.cpp's log to ours and initialise its backend, once per process."""
    global _backend_ready
    if not _backend_ready:
        llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        _backend_ready = True


def check_gguf_file(path: Path) -> None:
    """Raise ModelLoadError, naming the path, unless ``path`` looks like a GGUF file."""
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"model path is not a file: {path}")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != _GGUF_MAGIC:
        raise ModelLoadError(f"not a GGUF model file (bad magic {magic!r}): {path}")


@dataclass(frozen=True, slots=True)
class ContextParams:
    """How to size the llama.cpp context."""

    n_ctx: int
    n_seq_max: int
    n_batch: int
    n_threads: int
    n_threads_batch: int
    use_mlock: bool = False
    embeddings: bool = False
    batch_invariant: bool = True


def quantization_name(file_type: int | None) -> str | None:
    """``Q4_K_M`` for GGUF ``general.file_type`` 15; None when unknown."""
    return None if file_type is None else _QUANT_NAMES.get(file_type)


def select_kernels(*, batch_invariant: bool) -> None:
    """Choose ggml's CPU matmul kernels for this process, before its first matmul.

    ggml's tiled K-quant matmul takes over from the per-row dot product at 8+ rows
    where it judges it profitable, and its sums differ; switched off, every row of
    every batch goes through the same dot product. (Forcing it on at every size
    instead costs a third of single-stream decode speed.) ggml reads the switch once
    per process, at the first matmul of any model, so a process serving an invariant
    engine must choose before it loads anything else (the server loads its engine first).
    """
    if batch_invariant:
        os.environ.setdefault("GGML_CPU_TILED_MM", "0")


def tokenize_with(
    vocab: llama_cpp.llama_vocab_p,
    text: str,
    *,
    add_special: bool = True,
    parse_special: bool = True,
) -> list[int]:
    """``text``'s token ids in ``vocab`` (llama.cpp tokenizes from a const vocabulary, so
    any thread may call this while another decodes)."""
    data = text.encode("utf-8")
    capacity = len(data) + 8
    arr = (llama_cpp.llama_token * capacity)()
    n = llama_cpp.llama_tokenize(vocab, data, len(data), arr, capacity, add_special, parse_special)
    if n < 0:  # more tokens than the buffer: llama.cpp says how many and writes none
        capacity = -n
        arr = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(
            vocab, data, len(data), arr, capacity, add_special, parse_special
        )
    return list(arr[:n])


class LlamaModel:
    """One GGUF model with one context: tokenizer, decode, KV operations, logits."""

    def __init__(self, path: Path, params: ContextParams) -> None:
        check_gguf_file(path)
        ensure_backend()
        self.path = path
        self.params = params
        mparams = llama_cpp.llama_model_default_params()
        mparams.use_mmap = True
        mparams.use_mlock = params.use_mlock
        mparams.use_extra_bufts = extra_buffers_usable(batch_invariant=params.batch_invariant)
        if params.batch_invariant:
            select_kernels(batch_invariant=True)
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        if not model:
            raise ModelLoadError(
                f"llama.cpp could not load {path}: the file is truncated, corrupt,"
                " or of an architecture this llama.cpp build does not know"
            )
        self._model = model
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = params.n_ctx
        cparams.n_batch = params.n_batch
        cparams.n_ubatch = min(params.n_batch, 512)
        if params.batch_invariant:
            # ggml's tiled and KV-split flash-attention kernels (chosen by query count and
            # cache size) only take F16/F32 caches; a Q8_0 cache keeps every step on the
            # one per-query kernel, whose result ignores other sequences. It also halves
            # KV memory, at a precision cost llama.cpp users routinely accept.
            cparams.type_k = llama_cpp.GGML_TYPE_Q8_0
            cparams.type_v = llama_cpp.GGML_TYPE_Q8_0
        cparams.n_seq_max = params.n_seq_max
        cparams.n_threads = params.n_threads
        cparams.n_threads_batch = params.n_threads_batch
        # One cell pool for all sequences: prefix sharing needs it, and a sequence may
        # then use the whole context instead of n_ctx / n_seq_max.
        cparams.kv_unified = True
        # Full-size sliding-window cache, so a prefix can be reused from any position.
        cparams.swa_full = True
        cparams.no_perf = True
        # Flash attention visits a sequence's own cells in order, whatever else shares
        # the cache; without it the result depends on where other sequences' cells lie.
        cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        cparams.embeddings = params.embeddings
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            llama_cpp.llama_model_free(model)
            raise ModelLoadError(
                f"llama.cpp could not create a context for {path} (n_ctx={params.n_ctx},"
                f" n_seq_max={params.n_seq_max}): out of memory?"
            )
        self._ctx = ctx
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._vocab: llama_cpp.llama_vocab_p = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self._logits_row = ctypes.c_float * self.n_vocab
        self.n_ctx = llama_cpp.llama_n_ctx(ctx)
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(model)
        self.n_ubatch = llama_cpp.llama_n_ubatch(ctx)
        self.bos_token = llama_cpp.llama_vocab_bos(self._vocab)
        self.eos_token = llama_cpp.llama_vocab_eos(self._vocab)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self._batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        self._pieces: dict[int, bytes] = {}
        self._eog: frozenset[int] | None = None
        self._piece_buf = ctypes.create_string_buffer(256)

    # -- metadata -----------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as a string, or None when absent."""
        size = 65536
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buf, size)
        if n < 0:
            return None
        if n >= size:  # long values (chat templates) need a bigger buffer
            buf = ctypes.create_string_buffer(n + 1)
            llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buf, n + 1)
        return buf.value.decode("utf-8", errors="replace")

    @property
    def chat_template(self) -> str | None:
        raw = llama_cpp.llama_model_chat_template(self._model, None)
        return raw.decode("utf-8", errors="replace") if raw else None

    @property
    def description(self) -> str:
        buf = ctypes.create_string_buffer(256)
        llama_cpp.llama_model_desc(self._model, buf, 256)
        return buf.value.decode("utf-8", errors="replace")

    @property
    def size_bytes(self) -> int:
        return int(llama_cpp.llama_model_size(self._model))

    @property
    def eog_tokens(self) -> frozenset[int]:
        """Every end-of-generation token (eos, eot, <end_of_turn>, <|im_end|>...)."""
        if self._eog is None:
            is_eog = llama_cpp.llama_vocab_is_eog
            self._eog = frozenset(t for t in range(self.n_vocab) if is_eog(self._vocab, t))
        return self._eog

    @property
    def vocab(self) -> llama_cpp.llama_vocab_p:
        return self._vocab

    @property
    def ctx(self) -> llama_cpp.llama_context_p:
        # ctypes hands the pointer back untyped; None only after close().
        return cast(llama_cpp.llama_context_p, self._ctx)

    # -- tokenizer ----------------------------------------------------------------

    def tokenize(
        self, text: str, *, add_special: bool = True, parse_special: bool = True
    ) -> list[int]:
        return tokenize_with(
            self._vocab, text, add_special=add_special, parse_special=parse_special
        )

    def piece(self, token: int) -> bytes:
        """A token's raw bytes (possibly part of a UTF-8 character); cached."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        buf = self._piece_buf
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        piece = buf.raw[:n]
        self._pieces[token] = piece
        return piece

    def token_text(self, token: int) -> str:
        """A token as the vocabulary spells it, control tokens included (``<bos>``)."""
        if not 0 <= token < self.n_vocab:
            return ""
        raw = llama_cpp.llama_vocab_get_text(self._vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def detokenize(self, tokens: list[int]) -> str:
        """The text of ``tokens``; an id outside the vocabulary is the caller's error."""
        bad = next((t for t in tokens if not 0 <= t < self.n_vocab), None)
        if bad is not None:  # llama.cpp would read past its vocabulary
            raise InvalidRequestError(
                f"token id {bad} is outside the vocabulary (0..{self.n_vocab - 1})",
                param="tokens",
            )
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="replace")

    # -- decoding -----------------------------------------------------------------

    def decode(self, items: list[tuple[int, int, int, bool]]) -> int:
        """Decode one batch of ``(token, pos, seq_id, want_logits)``; llama_decode's code.

        Row ``i`` of the logits belongs to the i-th item that asked for logits.
        """
        batch = self._batch
        if len(items) > self.params.n_batch:
            raise ValueError(f"batch of {len(items)} tokens exceeds n_batch {self.params.n_batch}")
        token, pos, seq_ids, n_seq, logits = (
            batch.token,
            batch.pos,
            batch.seq_id,
            batch.n_seq_id,
            batch.logits,
        )
        for i, (tok, p, sid, want) in enumerate(items):
            token[i] = tok
            pos[i] = p
            seq_ids[i][0] = sid
            n_seq[i] = 1
            logits[i] = want
        batch.n_tokens = len(items)
        return int(llama_cpp.llama_decode(self._ctx, batch))

    def logits(self, batch_index: int) -> np.ndarray:
        """The logits row of a batch position that asked for logits (a view, copy to keep)."""
        ptr = llama_cpp.llama_get_logits_ith(self._ctx, batch_index)
        if not ptr:
            raise ValueError(f"batch position {batch_index} has no logits")
        # Runs between every two decodes; np.ctypeslib.as_array costs several times more.
        row = self._logits_row.from_address(ctypes.addressof(ptr.contents))
        return np.frombuffer(row, dtype=np.float32)

    # -- LoRA adapters ------------------------------------------------------------

    def load_adapter(self, path: Path) -> llama_cpp.llama_adapter_lora_p:
        """Load a GGUF LoRA adapter made for this model; ModelLoadError naming the file."""
        check_gguf_file(path)
        adapter = llama_cpp.llama_adapter_lora_init(self._model, str(path).encode())
        if not adapter:
            raise ModelLoadError(
                f"llama.cpp could not load the LoRA adapter {path}: not a LoRA GGUF"
                " (adapter.type=lora), or made for another architecture or tensor shapes"
            )
        return cast(llama_cpp.llama_adapter_lora_p, adapter)

    def set_adapters(self, adapters: list[tuple[llama_cpp.llama_adapter_lora_p, float]]) -> None:
        """Apply exactly ``adapters`` (with their scales) to the next decodes; [] clears them.

        llama.cpp applies adapters per context, to every sequence of a decode: the
        engine sets them between decodes, never within one. Setting the set already
        applied costs nothing (llama.cpp compares first).
        """
        n = len(adapters)
        handles: Any = (llama_cpp.llama_adapter_lora_p_ctypes * max(1, n))()
        scales = (ctypes.c_float * max(1, n))(*(s for _, s in adapters))
        for i, (handle, _) in enumerate(adapters):
            handles[i] = handle
        rc = llama_cpp.llama_set_adapters_lora(self._ctx, handles, n, scales)
        if rc != 0:
            raise ModelLoadError(f"llama.cpp refused to apply {n} LoRA adapter(s) (code {rc})")

    # -- KV cache -----------------------------------------------------------------

    def seq_copy(self, src: int, dst: int, n_tokens: int) -> None:
        llama_cpp.llama_memory_seq_cp(self._mem, src, dst, 0, n_tokens)

    def seq_remove(self, seq_id: int, start: int = 0) -> None:
        llama_cpp.llama_memory_seq_rm(self._mem, seq_id, start, -1)

    def seq_pos_max(self, seq_id: int) -> int:
        return int(llama_cpp.llama_memory_seq_pos_max(self._mem, seq_id))

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self._mem, True)

    def save_sequence(self, path: Path, seq_id: int, tokens: list[int]) -> int:
        arr = (llama_cpp.llama_token * len(tokens))(*tokens)
        return int(
            llama_cpp.llama_state_seq_save_file(
                self._ctx, str(path).encode(), seq_id, arr, len(tokens)
            )
        )

    def load_sequence(self, path: Path, seq_id: int, capacity: int) -> list[int] | None:
        """Restore a saved sequence's KV into ``seq_id``; its tokens, or None on failure."""
        arr = (llama_cpp.llama_token * capacity)()
        count = ctypes.c_size_t(0)
        read = llama_cpp.llama_state_seq_load_file(
            self._ctx, str(path).encode(), seq_id, arr, capacity, ctypes.byref(count)
        )
        if read == 0:
            return None
        return list(arr[: count.value])

    def close(self) -> None:
        if getattr(self, "_ctx", None):
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            llama_cpp.llama_model_free(self._model)
            self._model = None
