"""The embedded llama.cpp engine: one model, one context, one scheduler thread.

The asyncio side only puts commands on a thread-safe queue and reads events from
per-request asyncio queues; the engine thread alone touches llama.cpp.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from luodi.config.engine import EngineSettings
from luodi.config.models import AdapterSettings
from luodi.engine.llamacpp.control_text import spells_control, tokenize_isolated
from luodi.engine.llamacpp.default_model import resolve_model_path
from luodi.engine.llamacpp.detokenizer import IncrementalDetokenizer
from luodi.engine.llamacpp.draft_model import DraftModel
from luodi.engine.llamacpp.grammar import GrammarVocab
from luodi.engine.llamacpp.kv_cache import CopyKV, FreeKV, KVOp, PrefixCache, SeqIdPool, TrimKV
from luodi.engine.llamacpp.model import ContextParams, LlamaModel, quantization_name
from luodi.engine.llamacpp.outbox import Outbox, Stream
from luodi.engine.llamacpp.prompts import prepare_embedded
from luodi.engine.llamacpp.sampling import SequenceSampler, top_logprobs
from luodi.engine.llamacpp.scheduler import (
    ScheduledChunk,
    Scheduler,
    SchedulerOutput,
    Speculation,
)
from luodi.engine.llamacpp.sequence import Sequence
from luodi.engine.llamacpp.stop import StopMatcher
from luodi.engine.llamacpp.warmup import WarmPrefixes
from luodi.engine.observer import EngineObserver, NullObserver, StepKind
from luodi.engine.planning import completion_limit
from luodi.engine.types import (
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    ModelInfo,
    PromptRequest,
    RenderedPrompt,
    TemplateMetadata,
    Usage,
)
from luodi.errors import (
    ContextLengthError,
    EngineError,
    InvalidRequestError,
    LuodiError,
    NotFoundError,
)

__all__ = ["LlamaCppEngine", "ModelOpener"]

ModelOpener = Callable[[Path], AbstractContextManager[Path]]

log = logging.getLogger(__name__)

_KV_MARGIN = 64  # cells kept free so a decode step never races the accounting


@dataclass(slots=True)
class _Submit:
    seq: Sequence
    stream: Stream
    adapter: str | None = None


@dataclass(slots=True)
class _Abort:
    request_id: str


@dataclass(slots=True)
class _AddAdapter:
    adapter: AdapterSettings
    done: asyncio.Future[None]


@dataclass(slots=True)
class _Adapter:
    """A LoRA adapter loaded into this engine's model."""

    settings: AdapterSettings
    handle: Any


class LlamaCppEngine:
    """In-process llama.cpp with continuous batching, chunked prefill and a prefix cache."""

    def __init__(
        self,
        settings: EngineSettings,
        observer: EngineObserver | None = None,
        opener: ModelOpener | None = None,
    ) -> None:
        """``opener`` turns the model path into a loadable one (decrypting into memory)."""
        self.settings = settings
        self.observer: EngineObserver = observer or NullObserver()
        self._opener = opener
        self._resources = contextlib.ExitStack()
        self._abandoned = threading.Event()
        self._model: LlamaModel | None = None
        self._scheduler: Scheduler | None = None
        self._prefix_cache: PrefixCache | None = None
        self._commands: queue.SimpleQueue[_Submit | _Abort | _AddAdapter | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._streams: dict[str, Stream] = {}
        self._outbox = Outbox()
        self._samplers: dict[str, SequenceSampler] = {}
        self._grammar_vocab: GrammarVocab | None = None
        self._info: ModelInfo | None = None
        self._max_model_len = 0
        self._warm: WarmPrefixes | None = None
        self._draft: DraftModel | None = None
        self._started = False
        self._failed_steps = 0
        self._template: TemplateMetadata | None = None
        self._adapters: dict[str, _Adapter] = {}
        """LoRA adapters by name; written on the engine thread only."""
        self._applied: str | None = None
        """The adapter the context applies now (None: the base model)."""

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Start the engine thread, which loads the model and warms caches before serving."""
        if self._started:
            return
        if self._thread is not None and self._thread.is_alive():
            await asyncio.to_thread(self._thread.join)  # an abandoned start still loading
        self._abandoned.clear()
        self._commands = queue.SimpleQueue()
        loaded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._thread = threading.Thread(
            target=self._main, args=(loaded,), name="luodi-engine", daemon=True
        )
        self._thread.start()
        try:
            await loaded
        except asyncio.CancelledError:
            # The thread cannot be interrupted mid-load: have it free the model once loaded.
            self._abandoned.set()
            self._commands.put(None)
            raise
        self._started = True

    def _main(self, loaded: asyncio.Future[None]) -> None:
        # Every llama_decode runs on this one thread, warm-up included. ggml's OpenMP
        # build gives each calling thread its own worker team, and while more team
        # threads exist than cores, libgomp cuts its barrier spin to a token count:
        # one pool thread that had run the warm-up decode cost a sixth of decode speed.
        try:
            self._load()
        except BaseException as exc:
            self._release()
            loaded.get_loop().call_soon_threadsafe(_settle, loaded, exc)
            return
        loaded.get_loop().call_soon_threadsafe(_settle, loaded, None)
        self._run()
        if self._abandoned.is_set():
            self._release()

    def _load(self) -> None:
        s = self.settings
        source = resolve_model_path(s.model, s.cache_dir, check=self._opener is None)
        # The opened path (a memfd for an encrypted model) must outlive the model.
        path = self._resources.enter_context(self._opener(source)) if self._opener else source
        n_pinned = len(s.warm_prefixes) + len(_read_prefix_file(s.warm_prefix_file))
        cache_slots = (s.prefix_cache_slots + n_pinned) if s.prefix_cache else 0
        n_seq_max = s.max_batch_size + cache_slots
        model = LlamaModel(
            path,
            ContextParams(
                n_ctx=s.n_ctx,
                n_seq_max=n_seq_max,
                n_batch=s.n_batch,
                n_threads=s.n_threads,
                n_threads_batch=s.n_threads_batch or s.n_threads,
                use_mlock=s.use_mlock,
                batch_invariant=s.batch_invariant,
            ),
        )
        self._model = model
        self._grammar_vocab = GrammarVocab(model)  # built at the first grammar request
        self._max_model_len = min(s.max_model_len or model.n_ctx_train, model.n_ctx)
        self._prefix_cache = (
            PrefixCache(
                range(s.max_batch_size, n_seq_max),
                max_pins=min(s.pinned_prefixes_max, s.prefix_cache_slots // 2),
            )
            if s.prefix_cache
            else None
        )
        file_type = model.meta("general.file_type")
        self._info = ModelInfo(
            name=s.model_name or source.name.removesuffix(".gguf").removesuffix(".enc"),
            context_length=self._max_model_len,
            quantization=quantization_name(int(file_type)) if file_type else None,
            size_bytes=model.size_bytes,
            capabilities=("chat", "completion", "tools", "json_schema"),
            backend="llamacpp",
        )
        self._template = TemplateMetadata(
            configured=s.chat_template,
            gguf_template=model.chat_template,
            architecture=model.meta("general.architecture"),
            bos_token=model.piece(model.bos_token).decode("utf-8", errors="replace"),
            eos_token=model.piece(model.eos_token).decode("utf-8", errors="replace"),
            special_tokens=(
                ("bos", model.token_text(model.bos_token)),
                ("eos", model.token_text(model.eos_token)),
            ),
        )
        _touch_pages(path)
        self._warm_decode()
        for adapter in s.adapters:
            self._load_adapter(adapter)
        if self._prefix_cache is not None:
            texts = [*s.warm_prefixes, *_read_prefix_file(s.warm_prefix_file)]
            self._warm = WarmPrefixes(model, self._prefix_cache, s.cache_dir, identity=source)
            self._warm.load_or_compute(texts, batch_tokens=s.n_batch)
        if s.speculative.enabled and s.speculative.draft_model is not None:
            self._draft = DraftModel(s.speculative.draft_model, model, s.max_batch_size)
        # After the warm prefixes: the scheduler counts the cells they hold.
        self._scheduler = Scheduler(
            max_batch_size=s.max_batch_size,
            prefill_chunk=s.prefill_chunk,
            kv_capacity=model.n_ctx - _KV_MARGIN,
            max_queue=s.max_queue,
            seq_ids=SeqIdPool(range(s.max_batch_size)),
            prefix_cache=self._prefix_cache,
            share_min_tokens=s.prefix_share_min_tokens,
            speculation=_speculation(s, self._draft),
            max_step_tokens=s.n_batch,
            step_slack=s.step_slack,
            step_slack_s=s.step_slack_ms / 1000,
        )

    def _load_adapter(self, adapter: AdapterSettings) -> None:
        """Load a LoRA adapter into the model (engine thread); it applies per request."""
        assert self._model is not None
        if adapter.name in self._adapters:
            raise InvalidRequestError(
                f"model '{self.settings.model_name or 'default'}' already has an adapter"
                f" '{adapter.name}'",
                param="name",
            )
        handle = self._model.load_adapter(adapter.path)
        self._adapters[adapter.name] = _Adapter(adapter, handle)
        log.info("loaded LoRA adapter %s from %s", adapter.name, adapter.path)

    def _use_adapter(self, name: str | None) -> None:
        """Make the context apply ``name``'s adapter (or none) to the next decode."""
        if name == self._applied:
            return
        assert self._model is not None
        loaded = self._adapters[name] if name is not None else None
        self._model.set_adapters([] if loaded is None else [(loaded.handle, loaded.settings.scale)])
        self._applied = name

    def _warm_decode(self) -> None:
        """One throwaway decode so the first real request pays no first-call costs."""
        assert self._model is not None
        self._model.decode([(self._model.bos_token, 0, 0, True)])
        self._model.seq_remove(0)

    async def stop(self) -> None:
        if not self._started:
            return
        self._commands.put(None)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self._release()
        self._started = False

    def _release(self) -> None:
        """Free samplers, model and opened files; the engine thread has stopped using them."""
        for sampler in self._samplers.values():
            sampler.close()
        self._samplers.clear()
        self._grammar_vocab = None
        self._adapters.clear()  # llama.cpp frees adapters with their model
        self._applied = None
        if self._draft is not None:
            self._draft.close()
            self._draft = None
        if self._model is not None:
            self._model.close()
            self._model = None
        self._resources.close()

    # -- public API ---------------------------------------------------------------

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raise EngineError("the engine has not been started")
        return self._info

    @property
    def weights_file(self) -> Path | None:
        """The GGUF the model was loaded from (an encrypted model's decrypted memfd path,
        open while the model is); None before start and after stop."""
        return self._model.path if self._model is not None else None

    @property
    def model(self) -> LlamaModel:
        if self._model is None:
            raise EngineError("the engine has not been started")
        return self._model

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    @property
    def template_metadata(self) -> TemplateMetadata:
        """What the model and settings say about its chat template; ``luodi.chat`` builds it."""
        if self._template is None:
            raise EngineError("the engine has not been started")
        return self._template

    @property
    def warm_prefix_tokens(self) -> list[list[int]]:
        return self._warm.token_lists if self._warm else []

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        return self.model.tokenize(text, add_special=add_special)

    def detokenize(self, tokens: list[int]) -> str:
        return self.model.detokenize(tokens)

    def tokenize_chat(self, prompt: str | RenderedPrompt) -> list[int]:
        """Tokens of a rendered chat prompt: special tokens parsed, BOS added exactly once.

        Client text in the prompt's ``plain_spans`` is tokenized as plain text, so it
        cannot forge a turn marker (control_text.py).
        """
        model = self.model
        if isinstance(prompt, str):
            tokens = model.tokenize(prompt, add_special=False)
        else:
            tokens = tokenize_isolated(model, prompt)
        if model.add_bos and (not tokens or tokens[0] != model.bos_token):
            tokens.insert(0, model.bos_token)
        return tokens

    def spells_control(self, text: str) -> bool:
        """Whether ``text``, tokenized with special tokens parsed, holds a control token."""
        return spells_control(self.model, text)

    def health(self) -> dict[str, object]:
        sched = self._scheduler
        return {
            "status": "ok" if self._started and self._failed_steps == 0 else "degraded",
            "backend": "llamacpp",
            "model": self._info.name if self._info else None,
            "running": len(sched.running) if sched else 0,
            "waiting": len(sched.waiting) if sched else 0,
            "kv_reserved_cells": sched.cells_in_use if sched else 0,
            "preemptions": sched.preemptions if sched else 0,
            "kv_cells": self._model.n_ctx if self._model else 0,
            "cached_prefixes": len(self._prefix_cache.entries) if self._prefix_cache else 0,
            "pinned_prefixes": sorted(self._prefix_cache.pins) if self._prefix_cache else [],
        }

    def default_max_tokens(self, n_prompt: int) -> int:
        """Completion tokens for a request of ``n_prompt`` tokens that names no limit.

        ``engine.default_max_tokens`` when set, else up to the end of the context (as
        OpenAI does). Either way it is only a limit: cells are taken as tokens come.
        """
        limit = completion_limit(
            None, self.settings.default_max_tokens, self._max_model_len - n_prompt
        )
        assert limit is not None  # the room is known here
        return limit

    def prepare(self, request: PromptRequest) -> list[GenerationRequest]:
        """Render, tokenize and limit ``request``: one engine request per choice (prompts.py)."""
        return prepare_embedded(self, request, self.settings.default_max_tokens)

    def validate(self, request: GenerationRequest) -> None:
        """Reject a request that cannot fit, stating the numbers (never silent truncation)."""
        n_prompt = len(request.prompt_tokens)
        if n_prompt == 0:
            raise InvalidRequestError("the prompt is empty", param="prompt")
        max_tokens = request.params.max_tokens
        if max_tokens is None:  # no limit of its own: up to the end of the context
            max_tokens = request.params.max_tokens = self.default_max_tokens(n_prompt)
        scoring_only = max_tokens == 0 and request.params.prompt_logprobs is not None
        if max_tokens < 1 and not scoring_only:
            raise InvalidRequestError(
                "max_tokens must be at least 1 (0 only to score an echoed prompt)",
                param="max_tokens",
            )
        if n_prompt + max_tokens > self._max_model_len:
            raise ContextLengthError(
                f"this model's maximum context length is {self._max_model_len} tokens, but the"
                f" request asks for {n_prompt + max_tokens} tokens ({n_prompt} in the prompt"
                f" + {max_tokens} for the completion); shorten the prompt or lower max_tokens",
                param="max_tokens",
            )
        bad = [t for t in request.prompt_tokens if not 0 <= t < self.model.n_vocab]
        if bad:
            raise InvalidRequestError(
                f"prompt token id {bad[0]} is outside the vocabulary (0..{self.model.n_vocab - 1})",
                param="prompt",
            )

    @property
    def adapters(self) -> dict[str, AdapterSettings]:
        """The LoRA adapters loaded, by name."""
        return {name: a.settings for name, a in self._adapters.items()}

    async def add_adapter(self, adapter: AdapterSettings) -> None:
        """Load a LoRA adapter while serving; requests name it as ``model:adapter``.

        Raises:
            ModelLoadError: the file is not a LoRA GGUF for this model.
            InvalidRequestError: the name is taken.
        """
        if not self._started:
            raise EngineError("the engine has not been started")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._commands.put(_AddAdapter(adapter, done))
        await done

    async def generate(
        self, request: GenerationRequest, *, adapter: str | None = None
    ) -> AsyncIterator[GenerationEvent]:
        """Stream a generation's events (under LoRA ``adapter``, if named); leaving early
        aborts it within one step."""
        if not self._started:
            raise EngineError("the engine has not been started")
        if adapter is not None and adapter not in self._adapters:
            raise NotFoundError(
                f"model '{self.info.name}' has no adapter '{adapter}'; adapters:"
                f" {', '.join(sorted(self._adapters)) or 'none'}",
                param="model",
                code="adapter_not_found",
            )
        self.validate(request)
        events: asyncio.Queue[GenerationEvent | LuodiError] = asyncio.Queue()
        seq = Sequence(request)
        self._commands.put(_Submit(seq, Stream(asyncio.get_running_loop(), events), adapter))
        finished = False
        try:
            while True:
                item = await events.get()
                if isinstance(item, LuodiError):
                    finished = True
                    raise item
                yield item
                if item.finished:
                    finished = True
                    return
        finally:
            if not finished:
                self.abort(request.request_id)

    def abort(self, request_id: str) -> None:
        self._commands.put(_Abort(request_id))

    # -- the engine thread --------------------------------------------------------

    def _run(self) -> None:
        sched = self._scheduler
        assert sched is not None
        while True:
            if not self._drain(block=not sched.has_work):
                self._outbox.flush()
                break
            out = sched.schedule()
            try:
                self._step(out)
                self._failed_steps = 0
            except Exception as exc:  # the loop must survive anything one step throws
                log.exception("engine step failed")
                self._failed_steps += 1
                for chunk in out.chunks:
                    self._fail(chunk.seq, f"engine step failed: {exc}")
            self._outbox.flush()

    def _drain(self, *, block: bool) -> bool:
        """Take queued commands; when idle, wait for one and gather a first batch."""
        sched = self._scheduler
        assert sched is not None
        try:
            cmd = self._commands.get() if block else self._commands.get_nowait()
        except queue.Empty:
            return True
        gather_until = time.monotonic() + self.settings.max_wait_ms / 1000 if block else 0.0
        while True:
            if cmd is None:
                return False
            self._apply(cmd)
            timeout = gather_until - time.monotonic()
            try:
                cmd = (
                    self._commands.get(timeout=timeout)
                    if timeout > 0
                    else self._commands.get_nowait()
                )
            except queue.Empty:
                return True

    def _apply(self, cmd: _Submit | _Abort | _AddAdapter) -> None:
        sched = self._scheduler
        assert sched is not None
        if isinstance(cmd, _Abort):
            sched.abort(cmd.request_id)
            return
        if isinstance(cmd, _AddAdapter):
            error: BaseException | None = None
            try:
                self._load_adapter(cmd.adapter)
            except LuodiError as exc:
                error = exc
            cmd.done.get_loop().call_soon_threadsafe(_settle, cmd.done, error)
            return
        self._streams[cmd.seq.request_id] = cmd.stream
        try:
            sched.add(cmd.seq, adapter=cmd.adapter)
            self.observer.on_queued(len(sched.waiting), len(sched.running))
        except LuodiError as exc:
            self._emit_error(cmd.seq.request_id, exc)

    def _step(self, out: SchedulerOutput) -> None:
        model = self._model
        sched = self._scheduler
        assert model is not None and sched is not None
        for seq in out.finished:
            self._finish_stream(seq)
        self._apply_kv(out.kv_ops)
        for seq in out.preempted:
            log.debug("preempted %s at %d tokens to free KV cells", seq.request_id, seq.num_tokens)
        for seq in out.admitted:
            try:
                self._samplers[seq.request_id] = SequenceSampler(
                    model, seq.request.params, self.settings.seed, self._grammar_vocab
                )
            except LuodiError as exc:
                sched.finish(seq, FinishReason.ERROR, exc.message)
                self._emit_error(seq.request_id, exc)
                continue
            seq.detokenizer = IncrementalDetokenizer()
            seq.stop_matcher = StopMatcher(seq.request.params.stop)
            self.observer.on_admitted(seq.queued_seconds(), seq.cached_tokens)
        live = [c for c in out.chunks if c.seq.seq_id is not None]
        if not live:
            return
        sampled: dict[str, list[int]] = {}
        logprobs: dict[str, list[Any]] = {}
        scored_only: list[Sequence] = []
        # One llama_decode per adapter set: llama.cpp applies adapters to a whole decode.
        for group in out.groups:
            chunks = [c for c in group if c.seq.seq_id is not None]
            if chunks:
                self._decode_group(chunks, sampled, logprobs, scored_only)
        for seq in sched.update(out, sampled):
            tokens = sampled[seq.request_id]
            scores = logprobs.get(seq.request_id, [])
            for i, token in enumerate(tokens):
                later = len(tokens) - 1 - i
                if self._on_token(seq, token, scores[i] if scores else None, later=later):
                    break
        for seq in scored_only:
            self._finish_scored(seq)

    def _decode_group(
        self,
        chunks: list[ScheduledChunk],
        sampled: dict[str, list[int]],
        logprobs: dict[str, list[Any]],
        scored_only: list[Sequence],
    ) -> None:
        """Decode chunks that share an adapter set, then sample them from its logits.

        Sampling reads this decode's logits, so it runs before the next group decodes.
        """
        model = self._model
        sched = self._scheduler
        assert model is not None and sched is not None
        try:
            self._use_adapter(chunks[0].adapter)
        except LuodiError as exc:
            for chunk in chunks:
                self._fail(chunk.seq, exc.message)
            return
        items: list[tuple[int, int, int, bool]] = []
        sample_at: dict[str, int] = {}
        scored_at: list[tuple[Sequence, int, int]] = []  # (seq, batch index, position)
        for chunk in chunks:
            seq = chunk.seq
            seq_id = seq.seq_id
            assert seq_id is not None
            # The real next token comes from the first sampled position; each draft
            # position after it is sampled too, to verify the draft token it holds.
            first_sample = len(chunk.tokens) - 1 - chunk.draft
            # Position p's logits score prompt token p + 1: those not scored yet, up to
            # the last prompt token (whose logits pick the first output token).
            score_from = len(seq.prompt_logprobs) - 1 if seq.scoring else seq.prompt_len
            for i, tok in enumerate(chunk.tokens):
                pos = chunk.start_pos + i
                want = chunk.sample and i >= first_sample
                if want and i == first_sample:
                    sample_at[seq.request_id] = len(items)
                score = score_from <= pos < seq.prompt_len - 1
                if score:
                    scored_at.append((seq, len(items), pos))
                items.append((tok, pos, seq_id, want or score))
        started = time.monotonic()
        rc = model.decode(items)
        if rc == 1 and self._prefix_cache is not None:
            # No free KV slot (the scheduler's count says this cannot happen): drop
            # cached prefixes and try once more.
            self._apply_kv(sched.drop_cached_prefixes())
            rc = model.decode(items)
        if rc != 0:
            reason = "the KV cache is full" if rc == 1 else f"llama_decode returned {rc}"
            for chunk in chunks:
                self._fail(chunk.seq, reason)
            return
        elapsed = time.monotonic() - started
        with_logits = sum(1 for item in items if item[3])
        decoding = sum(1 for chunk in chunks if not chunk.seq.is_prefilling)
        kind: StepKind = (
            "prefill" if decoding == 0 else "mixed" if decoding < len(chunks) else "decode"
        )
        self.observer.on_step(len(chunks), len(items), elapsed, kind)
        sched.observe_step(with_logits, elapsed, n_prompt=len(items) - with_logits)
        self._score_prompts(scored_at)
        for chunk in chunks:
            rid = chunk.seq.request_id
            if rid not in sample_at:
                continue
            if chunk.seq.prefill_only:
                scored_only.append(chunk.seq)
                continue
            try:
                self._sample_run(chunk, sample_at[rid], sampled, logprobs)
            except Exception as exc:
                self._fail(chunk.seq, f"sampling failed: {exc}")

    def _sample_run(
        self,
        chunk: ScheduledChunk,
        first: int,
        sampled: dict[str, list[int]],
        logprobs: dict[str, list[Any]],
    ) -> None:
        """Sample the next token, then verify the chunk's draft, token by token.

        Position ``j`` is sampled exactly as it would be without a draft (same chain,
        same random draw), so the run keeps the output and its distribution: a draft
        token is kept when the model drew it, and the first draw that differs is the
        model's own next token, which ends the run.
        """
        model = self._model
        assert model is not None
        seq = chunk.seq
        rid = seq.request_id
        sampler = self._samplers[rid]
        k = seq.request.params.logprobs
        draft = chunk.tokens[len(chunk.tokens) - chunk.draft :]
        tokens: list[int] = []
        scores: list[Any] = []
        for j in range(chunk.draft + 1):
            token = sampler.sample(first + j)
            tokens.append(token)
            if k is not None:
                scores.append(top_logprobs(model, first + j, token, k))
            if j == chunk.draft or token != draft[j] or token in model.eog_tokens:
                break
        sampled[rid] = tokens
        if chunk.draft:
            self.observer.on_draft(chunk.draft, len(tokens) - 1)
        if scores:
            logprobs[rid] = scores

    def _score_prompts(self, scored_at: list[tuple[Sequence, int, int]]) -> None:
        """Append the log-probability of each prompt token whose logits just came."""
        model = self._model
        assert model is not None
        for seq, batch_index, pos in scored_at:
            if seq.finish_reason is not None or len(seq.prompt_logprobs) != pos + 1:
                continue
            k = seq.request.params.prompt_logprobs or 0
            seq.prompt_logprobs.append(top_logprobs(model, batch_index, seq.prompt[pos + 1], k))

    def _finish_scored(self, seq: Sequence) -> None:
        """End a ``max_tokens`` 0 request once its prompt is scored: no token is sampled."""
        sched = self._scheduler
        assert sched is not None
        if seq.finish_reason is not None:
            return
        sched.finish(seq, FinishReason.LENGTH)
        self._close_sampler(seq.request_id)
        self.observer.on_finished(
            FinishReason.LENGTH.value,
            seq.prompt_len,
            0,
            time.monotonic() - seq.request.arrival_time,
        )
        event = GenerationEvent(
            seq.request_id,
            finish_reason=FinishReason.LENGTH,
            usage=self._usage(seq),
            queued_s=seq.queued_seconds(),
            prompt_logprobs=list(seq.prompt_logprobs),
        )
        self._emit(seq.request_id, event, last=True)

    def _on_token(self, seq: Sequence, token: int, logprob: Any, *, later: int = 0) -> bool:
        """Stream one new output token; True when it ends the sequence.

        ``later`` output tokens follow it from the same verified draft; they are taken
        back when this one ends the sequence.
        """
        model, sched = self._model, self._scheduler
        assert model is not None and sched is not None
        params = seq.request.params
        n_output = len(seq.output_tokens) - later
        first = n_output == 1
        reason: FinishReason | None = None
        text = ""
        if (token in model.eog_tokens and not params.ignore_eos) or token in params.stop_token_ids:
            reason = FinishReason.STOP
        else:
            assert seq.detokenizer is not None and seq.stop_matcher is not None
            text, stopped = seq.stop_matcher.feed(seq.detokenizer.feed(model.piece(token)))
            if stopped:
                reason = FinishReason.STOP
            elif n_output >= params.max_tokens or (
                seq.prompt_len + n_output >= self._max_model_len
            ):
                reason = FinishReason.LENGTH
        if reason is not None and seq.stop_matcher is not None and not seq.stop_matcher.stopped:
            assert seq.detokenizer is not None
            tail, _ = seq.stop_matcher.feed(seq.detokenizer.flush())
            text += tail + seq.stop_matcher.flush()
        event = GenerationEvent(
            seq.request_id,
            text=text,
            token_ids=[token],
            logprobs=[logprob] if logprob is not None else [],
            queued_s=seq.queued_seconds() if first else None,
            prompt_logprobs=list(seq.prompt_logprobs)
            if first and params.prompt_logprobs is not None
            else None,
        )
        now = time.monotonic()
        if first:
            self.observer.on_first_token(now - seq.request.arrival_time)
        else:
            self.observer.on_token(now - seq.previous_token_at)
        seq.previous_token_at = now
        if reason is not None:
            sched.rewind(seq, later)
            sched.finish(seq, reason)
            event.finish_reason = reason
            event.usage = self._usage(seq)
            self._close_sampler(seq.request_id)
            self.observer.on_finished(
                reason.value,
                seq.prompt_len,
                len(seq.output_tokens),
                time.monotonic() - seq.request.arrival_time,
            )
        self._emit(seq.request_id, event, last=reason is not None)
        return reason is not None

    def _usage(self, seq: Sequence) -> Usage:
        return Usage(
            prompt_tokens=seq.prompt_len,
            completion_tokens=len(seq.output_tokens),
            cached_tokens=seq.cached_tokens,
        )

    def _fail(self, seq: Sequence, message: str) -> None:
        sched = self._scheduler
        assert sched is not None
        if seq.finish_reason is not None:
            return
        sched.finish(seq, FinishReason.ERROR, message)
        self._close_sampler(seq.request_id)
        self.observer.on_finished(
            "error",
            seq.prompt_len,
            len(seq.output_tokens),
            time.monotonic() - seq.request.arrival_time,
        )
        self._emit(
            seq.request_id,
            GenerationEvent(
                seq.request_id,
                finish_reason=FinishReason.ERROR,
                error=message,
                usage=self._usage(seq),
            ),
            last=True,
        )

    def _finish_stream(self, seq: Sequence) -> None:
        """A sequence that left without a token this step (cancelled, or the cache was full)."""
        self._close_sampler(seq.request_id)
        reason = seq.finish_reason or FinishReason.CANCELLED
        text = ""
        if (
            reason is FinishReason.LENGTH
            and seq.detokenizer is not None
            and seq.stop_matcher is not None
        ):
            # Stopped by a full KV cache: release the text held back for a stop string.
            tail, _ = seq.stop_matcher.feed(seq.detokenizer.flush())
            text = tail + seq.stop_matcher.flush()
        self.observer.on_finished(
            reason.value,
            seq.prompt_len,
            len(seq.output_tokens),
            time.monotonic() - seq.request.arrival_time,
        )
        self._emit(
            seq.request_id,
            GenerationEvent(
                seq.request_id,
                text=text,
                finish_reason=reason,
                usage=self._usage(seq),
                error=seq.error,
            ),
            last=True,
        )

    def _close_sampler(self, request_id: str) -> None:
        sampler = self._samplers.pop(request_id, None)
        if sampler is not None:
            sampler.close()

    def _apply_kv(self, ops: list[KVOp]) -> None:
        model = self._model
        assert model is not None
        for op in ops:
            if isinstance(op, CopyKV):
                model.seq_copy(op.src, op.dst, op.n_tokens)
            elif isinstance(op, FreeKV):
                model.seq_remove(op.seq_id)
            elif isinstance(op, TrimKV):
                model.seq_remove(op.seq_id, op.from_pos)

    def _emit(self, request_id: str, event: GenerationEvent, *, last: bool) -> None:
        stream = self._streams.pop(request_id, None) if last else self._streams.get(request_id)
        if stream is not None:
            self._outbox.put(stream, event)

    def _emit_error(self, request_id: str, exc: LuodiError) -> None:
        stream = self._streams.pop(request_id, None)
        if stream is not None:
            self._outbox.put(stream, exc)

    def running_kv_positions(self) -> list[int]:
        """Highest KV position held by each running-sequence id (-1: free)."""
        return [self.model.seq_pos_max(i) for i in range(self.settings.max_batch_size)]


def _speculation(settings: EngineSettings, draft: DraftModel | None) -> Speculation | None:
    spec = settings.speculative
    if not spec.enabled:
        return None
    return Speculation(
        proposer=draft.propose if draft is not None else None,
        num_tokens=spec.num_tokens,
        ngram_min=spec.ngram_min,
        ngram_max=spec.ngram_max,
        max_batch=spec.max_batch,
        fixed_tokens=spec.fixed_cost_tokens,
    )


def _settle(future: asyncio.Future[None], exc: BaseException | None) -> None:
    if future.done():  # start() was cancelled
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)


def _read_prefix_file(path: Path | None) -> list[str]:
    if path is None:
        return []
    import json

    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        data = json.loads(text)
        return [str(x) for x in data]
    return [line for line in text.splitlines() if line.strip()]


def _touch_pages(path: Path, block: int = 8 << 20) -> None:
    """Read the model file once so every weight page is resident before the first request."""
    with path.open("rb", buffering=0) as fh:
        while fh.read(block):
            pass
