"""Incremental full fine-tuning of a GGUF model through llama.cpp's ``llama_opt_*`` API.

What llama.cpp's training supports, and so what ``check_trainable`` refuses in one line:

- F32 weights only. Measured on an F16 model: training runs, but only its F32 tensors
  (the norms) change, the F16 matrices come out bit-identical; a quantized or F16
  model must first be dequantized to F32
  (``luodi model quantize BASE base-f32.gguf --type F32 --allow-requantize``).
- Architectures whose every graph op has a backward pass: measured for ``llama`` and
  ``qwen3`` (SwiGLU, RMSNorm, RoPE, Qwen 3's per-head query/key norms).
  Gemma (all versions) uses a GELU-gated feed-forward (GEGLU), which ggml cannot
  differentiate: llama.cpp aborts the whole process (``unsupported glu op for
  backward pass: GEGLU``), so it is refused before training starts.
- The token embedding is never trained (llama.cpp marks it ``FIXME``), so a model
  whose output layer is tied to it (Gemma) keeps its output layer too; every tensor of
  every transformer block is trained.
- ``n_ubatch == n_ctx``, or the K and V projections get no gradient; flash attention
  off (no backward); an F32 KV cache (no F16 ``OUT_PROD``).

Records are tokenized, joined with the end-of-sequence token and cut into windows of
``context`` tokens (stride ``context / 2`` for training, as llama.cpp's finetune
example does; non-overlapping for the held-out share). The loss is the mean token
cross-entropy in nats; perplexity is its exponential. The held-out loss is measured
before training and after every epoch on the same windows.
"""

from __future__ import annotations

import ctypes
import math
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from luodi.errors import ConfigError, ModelLoadError
from luodi.models import _ggml_opt as opt
from luodi.models._llama_log import captured_llama_log
from luodi.models.gguf_file import read_gguf_header
from luodi.models.training_data import Record, load_records, split_records

__all__ = [
    "FinetuneConfig",
    "FinetuneResult",
    "StepReport",
    "check_trainable",
    "finetune",
]


@dataclass(frozen=True, slots=True)
class FinetuneConfig:
    """One fine-tuning run."""

    base: Path
    data: Path
    out: Path
    context: int = 256
    epochs: int = 1
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    held_out: float = 0.1
    threads: int = 0
    seed: int = 0
    force: bool = False


@dataclass(frozen=True, slots=True)
class StepReport:
    """One optimizer step (or held-out window) as it finishes."""

    phase: str
    epoch: int
    step: int
    steps: int
    loss: float
    seconds: float


@dataclass(slots=True)
class FinetuneResult:
    """What a run did and measured; losses in nats per token."""

    out: str
    records_train: int
    records_held_out: int
    train_tokens: int
    held_out_tokens: int
    context: int
    epochs: int
    steps: int
    held_out_loss_before: float
    held_out_loss_after: float
    train_losses: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    train_tokens_per_second: float = 0.0
    peak_rss_bytes: int = 0
    output_bytes: int = 0

    @property
    def perplexity_before(self) -> float:
        """Held-out perplexity of the base model."""
        return math.exp(self.held_out_loss_before)

    @property
    def perplexity_after(self) -> float:
        """Held-out perplexity of the fine-tuned model."""
        return math.exp(self.held_out_loss_after)

    def to_json(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict."""
        return asdict(self) | {
            "held_out_perplexity_before": self.perplexity_before,
            "held_out_perplexity_after": self.perplexity_after,
        }


TRAINABLE_ARCHITECTURES = frozenset({"llama", "qwen3"})
"""Architectures whose every graph op has a backward pass in this ggml (both measured).

Anything else is refused before training starts: a missing backward op is a
``GGML_ABORT``, which kills the process instead of raising.
"""

_GEGLU = (
    "{arch} cannot be trained by this llama.cpp: its GELU-gated feed-forward (GEGLU) has"
    " no backward pass in ggml (only SwiGLU has one) and llama.cpp aborts the process on it;"
    " llama and qwen3 models in F32 can be trained"
)
_GELU = (
    "{arch} cannot be trained by this llama.cpp: its GELU feed-forward and LayerNorm have"
    " no backward pass in ggml; llama and qwen3 models in F32 can be trained"
)
_UNTRAINABLE = {
    "gemma": _GEGLU,
    "gemma2": _GEGLU,
    "gemma3": _GEGLU,
    "gemma3n": _GEGLU,
    "gemma-embedding": _GEGLU,
    "gpt2": _GELU,
    "phi2": _GELU,
    "starcoder": _GELU,
    "bloom": _GELU,
    "falcon": _GELU,
    "bert": _GELU,
}
_UNVERIFIED = (
    "training {arch} models is not verified with this llama.cpp (a graph op without a"
    " backward pass aborts the process); llama and qwen3 models in F32 can be trained"
)


def check_trainable(base: Path) -> None:
    """Refuse in one line (ConfigError) a file llama.cpp's training cannot train."""
    header = read_gguf_header(base)
    kind = str(header.metadata.get("general.type", "model"))
    if kind != "model":
        raise ConfigError(f"{base} is a GGUF {kind}, not a model")
    arch = str(header.metadata.get("general.architecture", ""))
    if arch not in TRAINABLE_ARCHITECTURES:
        raise ConfigError(_UNTRAINABLE.get(arch, _UNVERIFIED).format(arch=arch))
    other = sorted({t.type_name for t in header.tensors if t.type_name != "F32"})
    if other:
        raise ConfigError(
            f"{base.name} holds {', '.join(other)} weights; llama.cpp's training updates F32"
            " tensors only (the others come out unchanged): dequantize it first with"
            f" `luodi model quantize {base} {base.stem}-f32.gguf --type F32 --allow-requantize`"
        )


_LOAD_MODE_NONE = 0  # llama_load_mode: read the file into memory, no mmap


class _Model:
    """A model loaded for training, its context, and the text to tokens it needs."""

    def __init__(self, path: Path, context: int, threads: int) -> None:
        mparams = llama_cpp.llama_model_default_params()
        # Training writes the weights in place: they must live in memory, not a mapping.
        mparams.load_mode = _LOAD_MODE_NONE
        self.model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        if not self.model:
            raise ModelLoadError(f"llama.cpp could not load {path} for training")
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = context
        cparams.n_batch = context
        cparams.n_ubatch = context
        cparams.n_seq_max = 1
        if threads > 0:
            cparams.n_threads = threads
            cparams.n_threads_batch = threads
        cparams.type_k = llama_cpp.GGML_TYPE_F32
        cparams.type_v = llama_cpp.GGML_TYPE_F32
        cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cparams.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            llama_cpp.llama_model_free(self.model)
            raise ModelLoadError(f"llama.cpp could not create a training context for {path}")
        self.context = int(llama_cpp.llama_n_ctx(self.ctx))
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.eos = int(llama_cpp.llama_vocab_eos(self.vocab))
        template = llama_cpp.llama_model_chat_template(self.model, None)
        self.template: bytes | None = template or None

    def tokens(self, text: str) -> list[int]:
        raw = text.encode("utf-8")
        capacity = len(raw) + 16
        buf = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self.vocab, raw, len(raw), buf, capacity, True, False)
        if n < 0:
            capacity = -n
            buf = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(self.vocab, raw, len(raw), buf, capacity, True, False)
        return list(buf[:n])

    def render(self, record: Record) -> str:
        if record.text is not None:
            return record.text
        if self.template is None:
            raise ConfigError(
                f"record {record.line} is a conversation, the model has no chat template"
            )
        chat = (llama_cpp.llama_chat_message * len(record.messages))()
        keep = []
        for slot, (role, content) in zip(chat, record.messages, strict=True):
            keep += [role.encode(), content.encode()]
            slot.role, slot.content = keep[-2], keep[-1]
        size = sum(len(c) for c in keep) * 2 + 1024
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_chat_apply_template(self.template, chat, len(chat), False, buf, size)
        if n > size:
            buf = ctypes.create_string_buffer(n + 1)
            n = llama_cpp.llama_chat_apply_template(
                self.template, chat, len(chat), False, buf, n + 1
            )
        if n < 0:
            raise ConfigError(
                f"record {record.line}: llama.cpp cannot apply this model's chat template"
            )
        return buf.raw[:n].decode("utf-8", errors="replace")

    def stream(self, records: list[Record]) -> list[int]:
        out: list[int] = []
        for record in records:
            out += [*self.tokens(self.render(record)), self.eos]
        return out

    def close(self) -> None:
        llama_cpp.llama_free(self.ctx)
        llama_cpp.llama_model_free(self.model)


class _Dataset:
    """Token windows and their next-token labels, in a ggml-opt dataset."""

    def __init__(self, tokens: list[int], context: int, stride: int) -> None:
        self.windows = (len(tokens) - context - 1) // stride + 1 if len(tokens) > context else 0
        self.handle = opt.ggml.ggml_opt_dataset_init(
            opt.GGML_TYPE_I32, opt.GGML_TYPE_I32, context, context, max(1, self.windows), 1
        )
        shape = (max(1, self.windows), context)
        data = self._array(opt.ggml.ggml_opt_dataset_data(self.handle), shape)
        labels = self._array(opt.ggml.ggml_opt_dataset_labels(self.handle), shape)
        if self.windows:
            stream = np.asarray(tokens, dtype=np.int32)
            at = np.arange(self.windows)[:, None] * stride + np.arange(context)
            data[:] = stream[at]
            labels[:] = stream[at + 1]
        self.tokens = self.windows * context

    @staticmethod
    def _array(tensor: int, shape: tuple[int, int]) -> np.ndarray:
        pointer = ctypes.cast(opt.ggml.ggml_get_data(tensor), ctypes.POINTER(ctypes.c_int32))
        return np.ctypeslib.as_array(pointer, shape=shape)

    def free(self) -> None:
        opt.ggml.ggml_opt_dataset_free(self.handle)


class _Result:
    """A ggml-opt result: the running mean loss over the windows evaluated so far."""

    def __init__(self) -> None:
        self.handle = opt.ggml.ggml_opt_result_init()

    def totals(self) -> tuple[int, float]:
        n = ctypes.c_int64()
        loss, unc = ctypes.c_double(), ctypes.c_double()
        opt.ggml.ggml_opt_result_ndata(self.handle, ctypes.byref(n))
        opt.ggml.ggml_opt_result_loss(self.handle, ctypes.byref(loss), ctypes.byref(unc))
        return n.value, loss.value

    def reset(self) -> None:
        opt.ggml.ggml_opt_result_reset(self.handle)

    def free(self) -> None:
        opt.ggml.ggml_opt_result_free(self.handle)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def finetune(
    config: FinetuneConfig, on_step: Callable[[StepReport], None] | None = None
) -> FinetuneResult:
    """Train ``config.base`` on ``config.data``, save to ``config.out``; measure held-out loss.

    Raises ConfigError (one line) for what cannot be trained, ModelLoadError when
    llama.cpp cannot load or save the model.
    """
    if config.out.exists() and not config.force:
        raise ConfigError(f"{config.out} exists; pass --force to overwrite it")
    if config.context < 256 or config.context % 256:
        # llama.cpp pads a context to a multiple of 256, and training needs the window,
        # the context and the micro-batch to be the same length.
        raise ConfigError(f"--context must be a multiple of 256 (got {config.context})")
    check_trainable(config.base)
    train_records, held_records = split_records(
        load_records(config.data), config.held_out, seed=config.seed
    )
    with captured_llama_log() as llama_log:
        try:
            model = _Model(config.base, config.context, config.threads)
        except ModelLoadError as exc:
            raise ModelLoadError(f"{exc.message}: {llama_log.reason('no reason given')}") from None
        try:
            result = _train(config, model, train_records, held_records, on_step)
        finally:
            model.close()
        _check_loads(config.out)
    return result


def _check_loads(path: Path) -> None:
    """Load the written model once, as a server would, so a bad file fails here."""
    model = llama_cpp.llama_model_load_from_file(
        str(path).encode(), llama_cpp.llama_model_default_params()
    )
    if not model:
        raise ModelLoadError(f"the fine-tuned model {path} does not load")
    llama_cpp.llama_model_free(model)


def _optimizer(config: FinetuneConfig) -> opt.OptimizerParams:
    params = opt.OptimizerParams()
    params.adamw.alpha = config.learning_rate
    params.adamw.beta1, params.adamw.beta2 = 0.9, 0.999
    params.adamw.eps, params.adamw.wd = 1e-8, config.weight_decay
    return params


class _Trainer:
    """One training run on a loaded model: datasets, results, the step callback."""

    def __init__(
        self,
        config: FinetuneConfig,
        model: _Model,
        train: _Dataset,
        held: _Dataset,
        on_step: Callable[[StepReport], None] | None,
    ) -> None:
        self.config, self.model, self.train, self.held = config, model, train, held
        self.on_step = on_step
        self.train_result, self.eval_result = _Result(), _Result()
        self.losses: list[float] = []
        self.epoch = 0
        self._seen = (0, 0.0)
        self._phase_start = time.perf_counter()
        # Kept on the instance: llama.cpp holds pointers to both while training.
        self._optimizer = _optimizer(config)
        self._callback = opt.EPOCH_CALLBACK(self._report)
        self._callback_ptr = ctypes.cast(self._callback, ctypes.c_void_p)
        params = opt.llama_opt_params(
            n_ctx_train=0,
            param_filter=ctypes.cast(opt.llama.llama_opt_param_filter_all, ctypes.c_void_p).value,
            param_filter_ud=None,
            get_opt_pars=opt.CONSTANT_OPTIMIZER_PARAMS,
            get_opt_pars_ud=ctypes.addressof(self._optimizer),
            optimizer_type=opt.ADAMW,
        )
        opt.llama.llama_opt_init(model.ctx, model.model, params)

    def _report(self, train: bool, _o: int, _d: int, _r: int, ibatch: int, n: int, _t: int) -> None:
        done, mean = (self.train_result if train else self.eval_result).totals()
        # A result holds the running mean per token; this window's is what it added.
        seen, seen_mean = self._seen
        loss = (mean * done - seen_mean * seen) / (done - seen) if done > seen else mean
        self._seen = (done, mean)
        if train:
            self.losses.append(loss)
        if self.on_step is not None:
            phase = "train" if train else "held-out"
            seconds = time.perf_counter() - self._phase_start
            self.on_step(StepReport(phase, self.epoch, int(ibatch), int(n), loss, seconds))

    def held_out_loss(self) -> float:
        """Mean token loss on the held-out windows, with the weights as they are now."""
        self.eval_result.reset()
        self._seen, self._phase_start = (0, 0.0), time.perf_counter()
        opt.llama.llama_opt_epoch(
            self.model.ctx,
            self.held.handle,
            None,
            self.eval_result.handle,
            0,
            None,
            self._callback_ptr,
        )
        return self.eval_result.totals()[1]

    def train_epoch(self, epoch: int) -> None:
        """One pass over the training windows, one optimizer step per window."""
        self.epoch = epoch
        self.train_result.reset()
        self._seen, self._phase_start = (0, 0.0), time.perf_counter()
        opt.llama.llama_opt_epoch(
            self.model.ctx,
            self.train.handle,
            self.train_result.handle,
            None,
            self.train.windows,
            self._callback_ptr,
            None,
        )

    def free(self) -> None:
        self.train_result.free()
        self.eval_result.free()


def _train(
    config: FinetuneConfig,
    model: _Model,
    train_records: list[Record],
    held_records: list[Record],
    on_step: Callable[[StepReport], None] | None,
) -> FinetuneResult:
    window = model.context
    train = _Dataset(model.stream(train_records), window, window // 2)
    held = _Dataset(model.stream(held_records), window, window)
    try:
        if train.windows == 0 or held.windows == 0:
            raise ConfigError(
                f"too little text for --context {window}: the training records give"
                f" {train.windows} windows of {window} tokens and the held-out ones"
                f" {held.windows}; add records or lower --context"
            )
        trainer = _Trainer(config, model, train, held, on_step)
        try:
            before = trainer.held_out_loss()
            started = time.perf_counter()
            for epoch in range(1, config.epochs + 1):
                trainer.train_epoch(epoch)
            seconds = time.perf_counter() - started
            after = trainer.held_out_loss()
        finally:
            trainer.free()
    finally:
        train.free()
        held.free()
    _save(model, config.out)
    return FinetuneResult(
        out=str(config.out),
        records_train=len(train_records),
        records_held_out=len(held_records),
        train_tokens=train.tokens,
        held_out_tokens=held.tokens,
        context=window,
        epochs=config.epochs,
        steps=len(trainer.losses),
        held_out_loss_before=before,
        held_out_loss_after=after,
        train_losses=trainer.losses,
        train_seconds=seconds,
        train_tokens_per_second=train.tokens * config.epochs / seconds if seconds else 0.0,
        peak_rss_bytes=_peak_rss(),
        output_bytes=config.out.stat().st_size,
    )


def _save(model: _Model, out: Path) -> None:
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    opt.llama.llama_model_save_to_file(model.model, str(partial).encode())
    if not partial.exists():
        raise ModelLoadError(f"llama.cpp did not write {out}")
    partial.replace(out)
