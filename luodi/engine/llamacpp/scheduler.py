"""Who runs in the next step: continuous batching with chunked prefill.

Synchronous and deterministic: ``add()`` requests, ``schedule()`` a step,
``update()`` it with what was sampled, ``finish()`` sequences. It knows nothing of
llama.cpp; the KV operations it emits are executed by the runner, so the whole
policy can be tested with hand-made sequences.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from luodi.engine.llamacpp.kv_cache import (
    CopyKV,
    FreeKV,
    KVOp,
    PrefixCache,
    SeqIdPool,
    common_prefix,
)
from luodi.engine.llamacpp.sequence import Sequence, SequenceStatus
from luodi.engine.types import FinishReason
from luodi.errors import QueueFullError

__all__ = ["ScheduledChunk", "Scheduler", "SchedulerOutput"]


@dataclass(slots=True)
class ScheduledChunk:
    """Tokens of one sequence in this step's batch, at positions from ``start_pos``."""

    seq: Sequence
    tokens: list[int]
    start_pos: int
    sample: bool
    """True when the chunk's last token yields the next output token."""


@dataclass(slots=True)
class SchedulerOutput:
    """One step: KV operations to run first, then the batch."""

    kv_ops: list[KVOp] = field(default_factory=list)
    chunks: list[ScheduledChunk] = field(default_factory=list)
    admitted: list[Sequence] = field(default_factory=list)
    finished: list[Sequence] = field(default_factory=list)
    """Sequences that left without running this step (cancelled while waiting or running)."""

    @property
    def num_tokens(self) -> int:
        return sum(len(c.tokens) for c in self.chunks)

    @property
    def num_decode(self) -> int:
        return sum(1 for c in self.chunks if not c.seq.is_prefilling)

    def is_empty(self) -> bool:
        return not self.chunks and not self.kv_ops and not self.finished


class Scheduler:
    """Admits waiting requests by priority, batches decodes and budgets prefill.

    Each step decodes one token for every running sequence, plus up to
    ``prefill_chunk`` prompt tokens of sequences still prefilling. Higher priority
    classes are admitted first; waiting time ages a request's priority by one class
    every ``aging_s`` seconds, so no class starves. A request sharing at least
    ``share_min_tokens`` leading tokens with one still prefilling them waits for it,
    then copies them (SGLang calls this in-batch prefix caching).
    """

    def __init__(
        self,
        *,
        max_batch_size: int,
        prefill_chunk: int,
        kv_capacity: int,
        max_queue: int,
        seq_ids: SeqIdPool,
        prefix_cache: PrefixCache | None = None,
        share_min_tokens: int = 0,
        aging_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.prefill_chunk = prefill_chunk
        self.kv_capacity = kv_capacity
        self.max_queue = max_queue
        self.aging_s = aging_s
        self._seq_ids = seq_ids
        self._cache = prefix_cache
        self._share_min = share_min_tokens
        self._clock = clock
        self.waiting: list[Sequence] = []
        self.running: list[Sequence] = []
        self._pending_ops: list[KVOp] = []
        self._pending_finished: list[Sequence] = []

    # -- intake -------------------------------------------------------------------

    def add(self, seq: Sequence) -> None:
        """Queue a sequence; QueueFullError (429) when the waiting queue is at its bound."""
        if len(self.waiting) >= self.max_queue:
            raise QueueFullError(
                f"the engine's waiting queue is full ({self.max_queue} requests); retry shortly",
                retry_after=1.0,
            )
        seq.status = SequenceStatus.WAITING
        self.waiting.append(seq)

    def abort(self, request_id: str) -> Sequence | None:
        """Cancel a request wherever it is; it leaves at the next ``schedule()``."""
        for seq in (*self.waiting, *self.running):
            if seq.request_id == request_id:
                seq.cancelled = True
                return seq
        return None

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running or self._pending_ops or self._pending_finished)

    @property
    def reserved_cells(self) -> int:
        used = sum(s.reserved_cells for s in self.running)
        return used + (self._cache.cells if self._cache else 0)

    # -- one step -----------------------------------------------------------------

    def schedule(self) -> SchedulerOutput:
        out = SchedulerOutput(kv_ops=self._pending_ops, finished=self._pending_finished)
        self._pending_ops, self._pending_finished = [], []
        self._drop_cancelled(out)
        self._admit(out)
        for seq in self.running:  # decodes first: one token each, never starved by prefill
            if not seq.is_prefilling:
                out.chunks.append(
                    ScheduledChunk(seq, [seq.output_tokens[-1]], seq.n_computed, sample=True)
                )
        budget = self.prefill_chunk
        prefilling = sorted(
            (s for s in self.running if s.is_prefilling),
            key=lambda s: (-s.request.priority, s.admitted_at or 0.0),
        )
        for seq in prefilling:
            if budget <= 0:
                break
            take = min(budget, seq.prompt_len - seq.n_computed)
            start = seq.n_computed
            tokens = seq.prompt[start : start + take]
            out.chunks.append(
                ScheduledChunk(seq, tokens, start, sample=start + take == seq.prompt_len)
            )
            budget -= take
        return out

    def update(self, out: SchedulerOutput, sampled: dict[str, int]) -> list[Sequence]:
        """Advance sequences by what ran; returns those that got a new token."""
        advanced: list[Sequence] = []
        now = self._clock()
        for chunk in out.chunks:
            seq = chunk.seq
            seq.n_computed += len(chunk.tokens)
            token = sampled.get(seq.request_id)
            if chunk.sample and token is not None:
                seq.output_tokens.append(token)
                if seq.first_token_at is None:
                    seq.first_token_at = now
                seq.last_token_at = now
                advanced.append(seq)
        return advanced

    def finish(self, seq: Sequence, reason: FinishReason, error: str | None = None) -> None:
        """Retire a running sequence: free its id, keep its KV as a cached prefix if allowed."""
        seq.finish_reason = reason
        seq.error = error
        seq.status = SequenceStatus.FINISHED
        if seq in self.running:
            self.running.remove(seq)
        if seq.seq_id is None:
            return
        if self._cache is not None and reason is not FinishReason.ERROR and seq.n_computed > 0:
            self._pending_ops.extend(self._cache.insert(seq.kv_tokens, seq.seq_id))
        self._pending_ops.append(FreeKV(seq.seq_id))
        self._seq_ids.give(seq.seq_id)
        seq.seq_id = None

    def evict_cache(self) -> None:
        """Drop every unpinned cached prefix (the KV cache ran out of cells)."""
        if self._cache is not None:
            self._pending_ops.extend(self._cache.clear_unpinned())

    # -- internals ----------------------------------------------------------------

    def _drop_cancelled(self, out: SchedulerOutput) -> None:
        for seq in [s for s in self.waiting if s.cancelled]:
            self.waiting.remove(seq)
            seq.finish_reason = FinishReason.CANCELLED
            seq.status = SequenceStatus.FINISHED
            out.finished.append(seq)
        for seq in [s for s in self.running if s.cancelled]:
            self.finish(seq, FinishReason.CANCELLED)
            out.finished.append(seq)
        out.kv_ops.extend(self._pending_ops)
        self._pending_ops = []

    def _effective_priority(self, seq: Sequence, now: float) -> float:
        return float(seq.request.priority) + (now - seq.request.arrival_time) / self.aging_s

    def _admit(self, out: SchedulerOutput) -> None:
        now = self._clock()
        order = sorted(
            self.waiting,
            key=lambda s: (-self._effective_priority(s, now), s.request.arrival_time),
        )
        for seq in order:
            if len(self.running) >= self.max_batch_size:
                return
            if self._leader_for(seq) is not None:
                continue  # its shared prefix is being computed: copy it next step
            seq_id = self._seq_ids.take()
            if seq_id is None:
                return
            match = self._lookup(seq)
            cached = match[1] if match else 0
            need = seq.prompt_len - cached + seq.request.params.max_tokens
            free = self.kv_capacity - self.reserved_cells
            if need > free and self._cache is not None:
                ops, _ = self._cache.evict_for(need - free, protect=match[0] if match else None)
                out.kv_ops.extend(ops)
                free = self.kv_capacity - self.reserved_cells
                match = self._lookup(seq)
                cached = match[1] if match else 0
                need = seq.prompt_len - cached + seq.request.params.max_tokens
            if need > free and self.running:
                self._seq_ids.give(seq_id)
                return  # wait for running sequences to finish and free cells
            self.waiting.remove(seq)
            seq.seq_id = seq_id
            seq.status = SequenceStatus.RUNNING
            seq.admitted_at = now
            if match is not None:
                out.kv_ops.append(CopyKV(match[0], seq_id, cached))
                seq.n_computed = seq.cached_tokens = cached
            self.running.append(seq)
            out.admitted.append(seq)

    def _leader_for(self, seq: Sequence) -> Sequence | None:
        """A running sequence still computing a long prefix that ``seq`` shares."""
        if self._cache is None or self._share_min <= 0:
            return None
        available: int | None = None  # what could be copied now: scanned only if needed
        for lead in self.running:
            if not lead.is_prefilling:
                continue
            shared = min(common_prefix(lead.prompt, seq.prompt), seq.prompt_len - 1)
            if shared <= lead.n_computed or shared < self._share_min:
                continue
            if available is None:
                available = self._cache.match_len(seq.prompt, self._running_kv())
            if shared - available >= self._share_min:
                return lead
        return None

    def _running_kv(self) -> list[tuple[int, list[int]]]:
        return [(s.seq_id, s.kv_tokens) for s in self.running if s.seq_id is not None]

    def _lookup(self, seq: Sequence) -> tuple[int, int] | None:
        if self._cache is None:
            return None
        match = self._cache.lookup(seq.prompt, self._running_kv())
        if match is None:
            return None
        # The last prompt token is always recomputed: its logits give the first output.
        n = min(match[1], seq.prompt_len - 1)
        return (match[0], n) if n > 0 else None
