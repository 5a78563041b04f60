"""Who runs in the next step: continuous batching, chunked prefill, KV cells taken as needed.

Synchronous and deterministic: ``add()`` requests, ``schedule()`` a step,
``update()`` it with what was sampled, ``finish()`` sequences. It knows nothing of
llama.cpp; the KV operations it emits are executed by the runner, so the whole
policy can be tested with hand-made sequences.

KV cells are never reserved for tokens a request might generate (a chat request
without ``max_tokens`` may generate up to the end of the context). A request is
admitted when the cells of its prompt that the prefix cache cannot lend fit beside
the cells in use and the prompt tokens running sequences have still to compute,
with ``headroom`` cells to spare; each step then takes one cell per decoded token and
one per prefilled token. When a step does not fit, cached prefixes go first (least
recently used first), then running sequences are preempted: lowest priority first,
the newest first within a priority. A preempted sequence's cells are freed and it
waits again, ahead of later arrivals; once readmitted it computes its prompt and its
output so far once more (the prefix cache may lend part of it), without sampling or
streaming those tokens again, then continues where it stopped.

A sequence is preempted at most ``max_preemptions`` times, so no request pays for
recomputation without end. Past that it is not preempted again: it comes back once it
and the other sequences in the same case could all grow to their ``max_tokens``
within the cache, and the others make way for it. Requests that can still be
preempted are admitted beside them as usual, so none of this blocks the queue. The
one case a request is cut short is when it alone outgrows the cache (``max_tokens``
and the context allow more tokens than the cache has cells): it then ends with
``length``, as a request reaching the end of the context does.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from luodi.engine.llamacpp.drafting import PromptLookup
from luodi.engine.llamacpp.kv_cache import (
    CellLedger,
    CopyKV,
    FreeKV,
    KVOp,
    PrefixCache,
    SeqIdPool,
    TrimKV,
    common_prefix,
)
from luodi.engine.llamacpp.sequence import Sequence, SequenceStatus
from luodi.engine.llamacpp.step_cost import StepCost
from luodi.engine.types import FinishReason
from luodi.errors import QueueFullError

__all__ = ["SCORING_CHUNK", "ScheduledChunk", "Scheduler", "SchedulerOutput", "Speculation"]

SCORING_CHUNK = 32
"""Most prompt tokens per step of a sequence whose prompt is being scored."""

MIN_PREFILL = 16
"""Prompt tokens a step may always carry beside decodes, so arrivals are never starved."""


@dataclass(slots=True)
class ScheduledChunk:
    """Tokens of one sequence in this step's batch, at positions from ``start_pos``."""

    seq: Sequence
    tokens: list[int]
    start_pos: int
    sample: bool
    """True when the chunk's last token yields the next output token."""
    adapter: str | None = None
    """The LoRA adapter the sequence runs under (None: the base model)."""
    draft: int = 0
    """Draft tokens at the end of ``tokens``: each position is sampled and checked
    against the next draft token, and the run stops at the first disagreement."""


@dataclass(frozen=True, slots=True)
class Speculation:
    """How to draft by prompt lookup (``engine.speculative``).

    How many draft tokens a step carries is decided per step: a draft token is added
    while the tokens the step is expected to yield per unit of its cost still grow (see
    ``Scheduler._add_drafts``), so drafts stop by themselves where they would not pay:
    a large batch, a device where tokens cost, a context whose drafts miss.
    """

    num_tokens: int = 8
    """Most draft tokens per sequence and step."""
    ngram_min: int = 2
    ngram_max: int = 4
    max_batch: int = 8
    """Never draft while more sequences than this decode."""
    fixed_tokens: float | None = None
    """A step's fixed cost in tokens; None: measured (``StepCost``)."""
    evidence_fade: float = 0.9
    """Per step, how much of a sequence's draft evidence is kept: old misses fade, so a
    sequence whose drafts stopped being tried is tried again."""
    proposer: Callable[[Sequence, int], list[int]] | None = None
    """Drafts from elsewhere than prompt lookup (a draft model): up to ``k`` tokens."""


@dataclass(slots=True)
class SchedulerOutput:
    """One step: KV operations to run first, then the batch."""

    kv_ops: list[KVOp] = field(default_factory=list)
    chunks: list[ScheduledChunk] = field(default_factory=list)
    admitted: list[Sequence] = field(default_factory=list)
    """Sequences admitted for the first time (a preempted one coming back is not)."""
    preempted: list[Sequence] = field(default_factory=list)
    """Sequences whose cells were taken back; they wait to be computed again."""
    finished: list[Sequence] = field(default_factory=list)
    """Sequences that left without a token this step: cancelled, or stopped by a full cache."""
    turn: int = 0
    """This step's number, which rotates the order of ``groups``."""

    @property
    def groups(self) -> list[list[ScheduledChunk]]:
        """The chunks by adapter set, each to be decoded alone; the first group rotates.

        One group (the usual case, no adapter in play) keeps the chunks' order.
        """
        by_key: dict[str | None, list[ScheduledChunk]] = {}
        for chunk in self.chunks:
            by_key.setdefault(chunk.adapter, []).append(chunk)
        keys = sorted(by_key, key=lambda k: (k is not None, k or ""))
        start = self.turn % len(keys) if keys else 0
        return [by_key[k] for k in keys[start:] + keys[:start]]

    @property
    def num_tokens(self) -> int:
        return sum(len(c.tokens) for c in self.chunks)

    @property
    def num_decode(self) -> int:
        return sum(1 for c in self.chunks if not c.seq.is_prefilling)

    def is_empty(self) -> bool:
        return not self.chunks and not self.kv_ops and not self.finished


class Scheduler:
    """Admits waiting requests by priority, batches decodes, budgets prefill, preempts.

    Each step decodes one token for every running sequence, plus up to
    ``prefill_chunk`` prompt tokens of sequences still prefilling. Higher priority
    classes are admitted first; waiting time ages a request's priority by one class
    every ``aging_s`` seconds, so no class starves. A request sharing at least
    ``share_min_tokens`` leading tokens with one still prefilling them waits for it,
    then copies them (SGLang calls this in-batch prefix caching). KV cells are taken
    as sequences grow and given back by preemption (see the module docstring).
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
        headroom: int = 16,
        max_preemptions: int = 3,
        speculation: Speculation | None = None,
        max_step_tokens: int | None = None,
        step_slack: float | None = None,
        step_slack_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``prefix_cache`` may already hold entries (warm prefixes): their cells count.

        ``speculation`` turns on prompt-lookup drafts; they never make a step longer
        than ``max_step_tokens`` (llama.cpp's batch) nor take cells another needs.
        ``step_slack`` bounds the prompt tokens riding along with decodes: a step may take
        at most ``1 + step_slack`` times its decodes' time, or ``step_slack_s`` seconds
        more if that is longer (None: ``prefill_chunk``).
        """
        self.max_batch_size = max_batch_size
        self.prefill_chunk = prefill_chunk
        self.kv_capacity = kv_capacity
        self.max_queue = max_queue
        self.aging_s = aging_s
        self.headroom = headroom
        self.max_preemptions = max_preemptions
        self.preemptions = 0
        """Preemptions so far, all sequences together."""
        self._seq_ids = seq_ids
        self._cache = prefix_cache
        self._share_min = share_min_tokens
        self._speculation = speculation
        self._max_step_tokens = max_step_tokens
        self._step_slack = step_slack
        self._step_slack_s = step_slack_s
        fixed = speculation.fixed_tokens if speculation else None
        self.step_cost = StepCost(fixed=fixed)
        """Step time against tokens, fed by the runner (``observe_step``)."""
        self._clock = clock
        self._cells = CellLedger()
        for entry in prefix_cache.entries if prefix_cache is not None else ():
            self._cells.grow(entry.seq_id, len(entry.tokens))
        self.waiting: list[Sequence] = []
        self.running: list[Sequence] = []
        self._pending_ops: list[KVOp] = []
        self._pending_finished: list[Sequence] = []
        self._adapters: dict[str, str] = {}
        """Request id → the LoRA adapter it runs under (absent: the base model)."""
        self._steps = 0

    # -- intake -------------------------------------------------------------------

    def add(self, seq: Sequence, *, adapter: str | None = None) -> None:
        """Queue a sequence (under ``adapter``, if given); QueueFullError (429) when full."""
        if len(self.waiting) >= self.max_queue:
            raise QueueFullError(
                f"the engine's waiting queue is full ({self.max_queue} requests); retry shortly",
                retry_after=1.0,
            )
        seq.status = SequenceStatus.WAITING
        if adapter is not None:
            self._adapters[seq.request_id] = adapter
        self.waiting.append(seq)

    def adapter_of(self, seq: Sequence) -> str | None:
        """The LoRA adapter ``seq`` runs under; None for the base model."""
        return self._adapters.get(seq.request_id)

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
    def cells_in_use(self) -> int:
        """KV cells held by running sequences and cached prefixes, this step's included.

        Never more than ``kv_capacity``; safe to read from another thread.
        """
        return self._cells.used

    # -- one step -----------------------------------------------------------------

    def schedule(self) -> SchedulerOutput:
        out = SchedulerOutput(finished=self._pending_finished)
        self._pending_finished = []
        self._drop_cancelled(out)
        self._admit(out)
        out.chunks = self._plan()
        self._make_room(out)
        for chunk in out.chunks:
            assert chunk.seq.seq_id is not None
            self._cells.grow(chunk.seq.seq_id, len(chunk.tokens))
        out.kv_ops, self._pending_ops = self._pending_ops, []
        out.turn = self._steps
        self._steps += 1
        return out

    def update(
        self, out: SchedulerOutput, sampled: Mapping[str, int | list[int]]
    ) -> list[Sequence]:
        """Advance sequences by what ran; returns those that got new tokens.

        A chunk with a draft gets the tokens its verification kept (a list: the agreed
        draft tokens, then the model's own next token); the cells of the rest go back.
        """
        advanced: list[Sequence] = []
        now = self._clock()
        for chunk in out.chunks:
            seq = chunk.seq
            got = sampled.get(seq.request_id)
            tokens = [got] if isinstance(got, int) else (got or [])
            if self._speculation is not None and not seq.is_prefilling:
                fade = self._speculation.evidence_fade
                seq.draft_accepts *= fade
                seq.draft_rejects *= fade
            if chunk.draft and chunk.sample and tokens:
                self._settle_draft(chunk, len(tokens))
            else:
                seq.n_computed += len(chunk.tokens)
            if chunk.sample and tokens:
                seq.output_tokens.extend(tokens)
                if seq.first_token_at is None:
                    seq.first_token_at = now
                seq.last_token_at = now
                advanced.append(seq)
        return advanced

    def rewind(self, seq: Sequence, n_tokens: int) -> None:
        """Take back the last ``n_tokens`` outputs of a sequence that ends before them."""
        if n_tokens <= 0:
            return
        del seq.output_tokens[-n_tokens:]
        seq.n_computed = min(seq.n_computed, seq.num_tokens - 1)
        if seq.seq_id is not None:
            self._emit([TrimKV(seq.seq_id, seq.n_computed)])

    def observe_step(self, n_tokens: int, seconds: float, *, n_prompt: int = 0) -> None:
        """A decode of ``n_tokens`` tokens with logits and ``n_prompt`` without took
        ``seconds``: what decides how many draft and prompt tokens a step carries."""
        self.step_cost.observe(n_tokens, seconds, n_prompt=n_prompt)

    def _settle_draft(self, chunk: ScheduledChunk, kept: int) -> None:
        """Keep the KV of the positions verification agreed with, free the rest."""
        seq = chunk.seq
        accepted = kept - 1
        seq.n_computed += kept  # the last real token, then the agreed draft tokens
        seq.drafted_tokens += chunk.draft
        seq.accepted_tokens += accepted
        seq.draft_accepts += accepted
        if accepted < chunk.draft:
            seq.draft_rejects += 1.0
        if kept < len(chunk.tokens) and seq.seq_id is not None:
            self._emit([TrimKV(seq.seq_id, seq.n_computed)])

    def finish(self, seq: Sequence, reason: FinishReason, error: str | None = None) -> None:
        """Retire a running sequence: free its id, keep its KV as a cached prefix if allowed."""
        self._retire(seq, reason, error, keep_prefix=reason is not FinishReason.ERROR)

    def drop_cached_prefixes(self) -> list[KVOp]:
        """Drop every unpinned cached prefix now; the caller runs the returned ops at once."""
        if self._cache is None:
            return []
        ops = self._cache.clear_unpinned()
        for op in ops:
            self._cells.apply(op)
        return ops

    # -- internals ----------------------------------------------------------------

    def _emit(self, ops: Iterable[KVOp]) -> None:
        """Queue KV operations for the runner; the ledger follows them in order."""
        for op in ops:
            self._cells.apply(op)
            self._pending_ops.append(op)

    def _retire(
        self, seq: Sequence, reason: FinishReason, error: str | None, *, keep_prefix: bool
    ) -> None:
        seq.finish_reason = reason
        seq.error = error
        seq.status = SequenceStatus.FINISHED
        if seq in self.running:
            self.running.remove(seq)
        adapted = self._adapters.pop(seq.request_id, None) is not None
        if seq.seq_id is None:
            return
        if keep_prefix and not adapted and self._cache is not None and seq.n_computed > 0:
            key = seq.request.pin_prefix
            prompt = seq.request.prompt_tokens
            if key is not None and seq.n_computed >= len(prompt):
                # The prompt alone: what the app's later requests share is its head.
                self._emit(self._cache.pin(key, prompt, seq.seq_id))
            else:
                self._emit(self._cache.insert(seq.kv_tokens, seq.seq_id))
        self._emit([FreeKV(seq.seq_id)])
        self._seq_ids.give(seq.seq_id)
        seq.seq_id = None

    def _drop_cancelled(self, out: SchedulerOutput) -> None:
        for seq in [s for s in self.waiting if s.cancelled]:
            self.waiting.remove(seq)
            self._adapters.pop(seq.request_id, None)
            seq.finish_reason = FinishReason.CANCELLED
            seq.status = SequenceStatus.FINISHED
            out.finished.append(seq)
        for seq in [s for s in self.running if s.cancelled]:
            self.finish(seq, FinishReason.CANCELLED)
            out.finished.append(seq)

    def _effective_priority(self, seq: Sequence, now: float) -> float:
        return float(seq.request.priority) + (now - seq.request.arrival_time) / self.aging_s

    def _admit(self, out: SchedulerOutput) -> None:
        if not self.waiting:
            return
        now = self._clock()
        order = sorted(
            self.waiting,
            key=lambda s: (-self._effective_priority(s, now), s.request.arrival_time),
        )
        for seq in order:
            if len(self.running) >= self.max_batch_size or not self._seq_ids.available:
                return
            if self._leader_for(seq) is not None:
                continue  # its shared prefix is being computed: copy it next step
            if self._protected(seq) and not self._room_to_finish(seq):
                continue  # waits for sequences that may not be preempted either
            match = self._lookup(seq)
            # Headroom keeps room for others to grow; with nothing else running it may go.
            grow = bool(self.running) or self._fits_without_cache(seq, match, grow=True)
            match = self._make_way(seq, match, grow=grow)
            if not self._fits(seq, match, grow=grow):
                if self.running:
                    return  # wait for running sequences to free cells, in priority order
                self._refuse(seq, out)
                continue
            self._start(seq, match, now, out)

    def _fits(
        self, seq: Sequence, match: tuple[int, int] | None, *, grow: bool, used: int | None = None
    ) -> bool:
        """Whether ``seq``'s uncomputed tokens fit in free cells, with headroom if asked.

        Cells in use (``used``, if given) and prompt tokens that running sequences have
        still to compute are taken already.
        """
        need = seq.num_tokens - (match[1] if match else 0)
        if grow:
            need += min(self.headroom, seq.request.params.max_tokens - len(seq.output_tokens))
        taken = self._cells.used if used is None else used
        taken += sum(s.num_tokens - s.n_computed for s in self.running)
        return taken + need <= self.kv_capacity

    def _room_to_finish(self, seq: Sequence) -> bool:
        """Whether ``seq`` and the running sequences that may not be preempted again
        could all grow to their ``max_tokens`` in the cells no pinned prefix holds."""
        others = [s for s in self.running if self._protected(s)]
        if not others:
            return True  # alone, it may still outgrow the cache: it then ends with length
        demand = sum(s.prompt_len + s.request.params.max_tokens for s in (*others, seq))
        return demand <= self.kv_capacity - self._pinned_cells()

    def _pinned_cells(self) -> int:
        held = [s.seq_id for s in self.running if s.seq_id is not None]
        if self._cache is not None:
            held += [e.seq_id for e in self._cache.entries if not e.pinned]
        return self._cells.used_without(held)

    def _make_way(
        self, seq: Sequence, match: tuple[int, int] | None, *, grow: bool
    ) -> tuple[int, int] | None:
        """Drop cached prefixes, least recently used first, if that lets ``seq`` in.

        The prefix it would copy is kept when dropping the others is enough. Returns
        what ``seq`` may copy afterwards.
        """
        for keep in (match, None):
            if self._fits(seq, match, grow=grow):
                break
            if self._fits_without_cache(seq, keep, grow=grow):
                while not self._fits(seq, match, grow=grow) and self._evict_one(keep):
                    match = self._lookup(seq)
        return match

    def _fits_without_cache(
        self, seq: Sequence, match: tuple[int, int] | None, *, grow: bool
    ) -> bool:
        """Whether it would fit with every unpinned cached prefix (but ``match``'s) dropped."""
        keep = match[0] if match else None
        entries = self._cache.entries if self._cache is not None else []
        spare = [e.seq_id for e in entries if not e.pinned and e.seq_id != keep]
        return self._fits(seq, match, grow=grow, used=self._cells.used_without(spare))

    def _start(
        self, seq: Sequence, match: tuple[int, int] | None, now: float, out: SchedulerOutput
    ) -> None:
        seq_id = self._seq_ids.take()
        assert seq_id is not None
        self.waiting.remove(seq)
        seq.seq_id = seq_id
        seq.status = SequenceStatus.RUNNING
        seq.n_computed = 0
        if match is not None:
            self._emit([CopyKV(match[0], seq_id, match[1])])
            seq.n_computed = match[1]
        if seq.admitted_at is None:
            seq.admitted_at = now
            seq.cached_tokens = seq.n_computed
            out.admitted.append(seq)
        self.running.append(seq)

    def _refuse(self, seq: Sequence, out: SchedulerOutput) -> None:
        """``seq`` cannot fit even with nothing else running: end it, saying why."""
        self.waiting.remove(seq)
        self._adapters.pop(seq.request_id, None)
        seq.status = SequenceStatus.FINISHED
        if seq.output_tokens:  # preempted, and its output has grown past what fits alone
            seq.finish_reason = FinishReason.LENGTH
        else:
            seq.finish_reason = FinishReason.ERROR
            pinned = self._pinned_cells()
            seq.error = (
                f"the prompt needs {seq.num_tokens} KV cells; the cache has"
                f" {self.kv_capacity - pinned} for requests ({pinned} of its"
                f" {self.kv_capacity} hold pinned warm prefixes)"
            )
        out.finished.append(seq)

    def _plan(self) -> list[ScheduledChunk]:
        """This step's chunks: every decode, then prefill up to the budget."""
        chunks = [
            ScheduledChunk(
                seq,
                [seq.output_tokens[-1]],
                seq.n_computed,
                sample=True,
                adapter=self.adapter_of(seq),
            )
            for seq in self.running
            if not seq.is_prefilling
        ]
        budget = self._prefill_budget(len(chunks))
        prefilling = sorted(
            (s for s in self.running if s.is_prefilling),
            key=lambda s: (-s.request.priority, s.admitted_at or 0.0),
        )
        for seq in prefilling:
            if budget <= 0:
                break
            start = seq.n_computed
            # Every scored position keeps a vocabulary-wide logits row: short chunks keep
            # llama.cpp's output buffer small.
            limit = min(budget, SCORING_CHUNK) if seq.scoring else budget
            end = min(seq.num_tokens, start + limit)
            chunks.append(
                ScheduledChunk(
                    seq,
                    seq.tokens_between(start, end),
                    start,
                    sample=end == seq.num_tokens,
                    adapter=self.adapter_of(seq),
                )
            )
            budget -= end - start
        if self._speculation is not None:
            self._add_drafts(chunks, self._speculation)
        return chunks

    def _prefill_budget(self, n_decode: int) -> int:
        """Prompt tokens this step may carry: all of ``prefill_chunk`` with no decode to
        delay, else what keeps the step within its slack (never below ``MIN_PREFILL``)."""
        if self._step_slack is None or n_decode == 0:
            return self.prefill_chunk
        budget = self.step_cost.prefill_budget(n_decode, self._step_slack, self._step_slack_s)
        fits = int(budget + 1e-6)
        return min(self.prefill_chunk, max(MIN_PREFILL, fits))

    def _add_drafts(self, chunks: list[ScheduledChunk], spec: Speculation) -> None:
        """Append prompt-lookup drafts to decode chunks where they raise tokens per second.

        The step yields one token per decoding sequence, plus ``p**j`` expected tokens
        for the ``j``-th draft token of a sequence whose drafts the model accepts with
        chance ``p``, and costs ``fixed + its decode tokens`` in token units. Draft tokens
        are added best first while each raises the expected tokens per cost: one alone
        a lot, four at ``p`` 0.9 on this CPU, none in a large batch. Drafts use only spare
        cells and batch room.
        """
        decodes = [c for c in chunks if not c.seq.is_prefilling]
        if not decodes or len(decodes) > spec.max_batch:
            return
        planned = sum(len(c.tokens) for c in chunks)
        room = self.kv_capacity - self._cells.used - planned
        if self._max_step_tokens is not None:
            room = min(room, self._max_step_tokens - planned)
        # Against the decodes alone: prefill riding along is work the step does anyway.
        expected = float(len(decodes))
        cost = self.step_cost.fixed_tokens + len(decodes)
        drafts: list[list[int]] = []
        best: list[tuple[float, int]] = []  # (-chance of the next draft token, chunk index)
        for index, chunk in enumerate(decodes):
            chance = chunk.seq.draft_acceptance
            # Each token taken raises expected / cost, so a sequence whose first draft
            # token cannot pass now never will: skip its lookup (or draft-model decodes).
            drafts.append(
                self._draft_for(chunk.seq, spec, room) if chance * cost > expected else []
            )
            if drafts[-1]:
                best.append((-chance, index))
        heapq.heapify(best)
        taken = [0] * len(decodes)
        while best and room > 0:
            chance, index = best[0]
            if -chance * cost <= expected:
                break  # the best draft token left would lower tokens per second
            heapq.heappop(best)
            taken[index] += 1
            expected -= chance
            cost += 1
            room -= 1
            if taken[index] < len(drafts[index]):
                p = decodes[index].seq.draft_acceptance
                heapq.heappush(best, (chance * p, index))
        for chunk, draft, n in zip(decodes, drafts, taken, strict=True):
            if n:
                chunk.tokens = [*chunk.tokens, *draft[:n]]
                chunk.draft = n

    def _draft_for(self, seq: Sequence, spec: Speculation, room: int) -> list[int]:
        """What prompt lookup proposes for ``seq`` within its limits; [] for none."""
        params = seq.request.params
        if not params.speculative or room <= 0:
            return []
        limit = min(spec.num_tokens, room)
        if params.max_tokens is not None:
            # The verified run yields one token more than the draft.
            limit = min(limit, params.max_tokens - len(seq.output_tokens) - 1)
        if limit <= 0:
            return []
        if spec.proposer is not None:
            return spec.proposer(seq, limit)
        if seq.drafter is None:
            seq.drafter = PromptLookup(spec.ngram_min, spec.ngram_max)
        return seq.drafter.propose(seq.prompt, seq.output_tokens, limit)

    def _make_room(self, out: SchedulerOutput) -> None:
        """Free cells until this step's chunks fit: cached prefixes first, then sequences."""
        while sum(len(c.tokens) for c in out.chunks) > self.kv_capacity - self._cells.used:
            if self._evict_one(None):
                continue
            victim = self._victim()
            if victim is None:
                break
            if not self._protected(victim) and len(self.running) > 1:
                self._preempt(victim, out)
            else:  # alone, or beside sequences that may not be preempted either
                self._truncate(victim, out)
            out.chunks = self._plan()

    def _victim(self) -> Sequence | None:
        """Preemptable ones first; lowest priority first, then the newest."""
        order = sorted(
            enumerate(self.running),
            key=lambda item: (
                self._protected(item[1]),
                item[1].request.priority,
                -item[1].request.arrival_time,
                -item[0],
            ),
        )
        return order[0][1] if order else None

    def _protected(self, seq: Sequence) -> bool:
        """Preempted as often as allowed: it is not preempted again."""
        return seq.preemptions >= self.max_preemptions

    def _preempt(self, seq: Sequence, out: SchedulerOutput) -> None:
        self.running.remove(seq)
        if seq.seq_id is not None:
            self._emit([FreeKV(seq.seq_id)])
            self._seq_ids.give(seq.seq_id)
            seq.seq_id = None
        seq.n_computed = 0
        seq.status = SequenceStatus.WAITING
        seq.preemptions += 1
        self.preemptions += 1
        self.waiting.append(seq)  # its early arrival puts it ahead of later requests
        out.preempted.append(seq)

    def _truncate(self, seq: Sequence, out: SchedulerOutput) -> None:
        """End ``seq`` because the cache is full and nobody else can give cells back."""
        if seq in out.admitted:  # admitted this step: it never starts
            out.admitted.remove(seq)
        if seq.output_tokens:
            self._retire(seq, FinishReason.LENGTH, None, keep_prefix=False)
        else:
            message = f"the KV cache ({self.kv_capacity} cells) is full; retry shortly"
            self._retire(seq, FinishReason.ERROR, message, keep_prefix=False)
        out.finished.append(seq)

    def _evict_one(self, protect: tuple[int, int] | None) -> bool:
        """Drop the least recently used unpinned cached prefix; False if none is left."""
        if self._cache is None:
            return False
        ops = self._cache.evict_lru(protect[0] if protect else None)
        self._emit(ops)
        return bool(ops)

    def _leader_for(self, seq: Sequence) -> Sequence | None:
        """A running sequence still computing a long prefix that ``seq`` shares."""
        if self._cache is None or self._share_min <= 0 or seq.scoring or self.adapter_of(seq):
            return None
        available: int | None = None  # what could be copied now: scanned only if needed
        for lead in self.running:
            if not lead.is_prefilling or self.adapter_of(lead) is not None:
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
        """What running base-model sequences could lend (an adapter's KV is its own)."""
        return [
            (s.seq_id, s.kv_tokens)
            for s in self.running
            if s.seq_id is not None and self.adapter_of(s) is None
        ]

    def _lookup(self, seq: Sequence) -> tuple[int, int] | None:
        if self._cache is None or seq.scoring or self.adapter_of(seq) is not None:
            return None
        match = self._cache.lookup(seq.all_tokens, self._running_kv())
        if match is None:
            return None
        # The last token is always recomputed: its logits give the next output token.
        n = min(match[1], seq.num_tokens - 1)
        return (match[0], n) if n > 0 else None
