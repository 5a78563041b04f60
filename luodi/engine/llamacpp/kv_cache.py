"""KV bookkeeping: sequence-id slots, cells in use and the prefix cache, without llama.cpp.

The engine uses one unified llama.cpp KV cache. Each running sequence and each
cached prefix owns a llama sequence id; ``llama_memory_seq_cp`` shares cells
between ids instead of copying them, so reusing a 1,000-token system prompt costs
almost nothing. This module decides *what* to copy and free, and counts the cells
that are in use as a result; the runner executes the resulting ``CopyKV``/``FreeKV``
operations before the next decode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "CacheEntry",
    "CellLedger",
    "CopyKV",
    "FreeKV",
    "KVOp",
    "PrefixCache",
    "SeqIdPool",
    "TrimKV",
    "common_prefix",
]


@dataclass(frozen=True, slots=True)
class CopyKV:
    """Share the KV of positions ``[0, n_tokens)`` of ``src`` with ``dst``."""

    src: int
    dst: int
    n_tokens: int


@dataclass(frozen=True, slots=True)
class FreeKV:
    """Drop every cell of ``seq_id`` (cells shared with other ids survive for them)."""

    seq_id: int


@dataclass(frozen=True, slots=True)
class TrimKV:
    """Drop the cells of ``seq_id`` at positions ``from_pos`` and later (rejected drafts)."""

    seq_id: int
    from_pos: int


KVOp = CopyKV | FreeKV | TrimKV


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    # Compare in blocks first: prompts share long prefixes and Python loops are slow.
    step = 64
    while i + step <= n and a[i : i + step] == b[i : i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i


class CellLedger:
    """The KV cells in use, counted exactly through every growth, copy and free.

    llama.cpp frees a cell once no sequence id holds it, and ``seq_cp`` adds ids to
    cells instead of copying them, so the cells in use are not a sum over holders.
    The ledger records, per sequence id, the runs of cells ("spans") it holds, in
    position order: a holder's own span is the cells it computed itself; a copy holds
    a prefix of its source's spans. A span's cells in use are the longest prefix of it
    that any holder still references, and ``used`` is their sum.
    """

    def __init__(self) -> None:
        self._held: dict[int, list[tuple[int, int]]] = {}  # seq id -> [(span, length)]
        self._own: dict[int, int] = {}  # seq id -> the span its new cells extend
        self._spans = 0
        self.used = 0
        """Cells in use; a plain int, so another thread may read it at any time."""

    def grow(self, seq_id: int, n_cells: int) -> None:
        """``seq_id`` computes ``n_cells`` more positions into cells of its own."""
        if n_cells <= 0:
            return
        spans = self._held.setdefault(seq_id, [])
        own = self._own.get(seq_id)
        if own is None:
            own = self._own[seq_id] = self._spans
            self._spans += 1
            spans.append((own, n_cells))
        else:
            span, length = spans[-1]
            assert span == own, "a holder's own span is its last"
            spans[-1] = (own, length + n_cells)
        self.used += n_cells  # only the owner references a span's newest cells

    def apply(self, op: KVOp) -> None:
        """Follow one KV operation the runner is about to execute."""
        if isinstance(op, CopyKV):
            self._copy(op.src, op.dst, op.n_tokens)
        elif isinstance(op, TrimKV):
            self.trim(op.seq_id, op.from_pos)
        else:
            self.free(op.seq_id)

    def trim(self, seq_id: int, keep: int) -> None:
        """``seq_id`` keeps its first ``keep`` positions and lets go of the rest."""
        spans = self._held.get(seq_id)
        if not spans or self.held(seq_id) <= keep:
            return
        kept: list[tuple[int, int]] = []
        for span, length in spans:
            if keep <= 0:
                break
            kept.append((span, min(length, keep)))
            keep -= length
        self._held[seq_id] = kept
        own = self._own.get(seq_id)
        if own is not None and not any(span == own for span, _ in kept):
            self._own.pop(seq_id)  # its next cells start a new span
        self.used = self._count()

    def free(self, seq_id: int) -> None:
        """``seq_id`` lets go of its cells; those other holders share stay in use."""
        if self._held.pop(seq_id, None) is not None:
            self._own.pop(seq_id, None)
            self.used = self._count()

    def held(self, seq_id: int) -> int:
        """Positions ``seq_id`` holds (shared or its own)."""
        return sum(length for _, length in self._held.get(seq_id, ()))

    def _copy(self, src: int, dst: int, n_tokens: int) -> None:
        shared: list[tuple[int, int]] = []
        for span, length in self._held.get(src, ()):
            if n_tokens <= 0:
                break
            take = min(length, n_tokens)
            shared.append((span, take))
            n_tokens -= take
        replaced = self._held.get(dst)
        self._held[dst] = shared  # the scheduler copies only into ids that hold nothing
        self._own.pop(dst, None)
        if replaced:
            self.used = self._count()

    def used_without(self, seq_ids: Iterable[int]) -> int:
        """Cells that would stay in use if ``seq_ids`` let go of theirs."""
        return self._count(set(seq_ids))

    def _count(self, without: set[int] | frozenset[int] = frozenset()) -> int:
        longest: dict[int, int] = {}
        for seq_id, spans in self._held.items():
            if seq_id in without:
                continue
            for span, length in spans:
                if length > longest.get(span, 0):
                    longest[span] = length
        return sum(longest.values())


class SeqIdPool:
    """Hands out llama sequence ids from a fixed range."""

    def __init__(self, ids: Iterable[int]) -> None:
        self._free = sorted(ids, reverse=True)
        self.capacity = len(self._free)

    def take(self) -> int | None:
        return self._free.pop() if self._free else None

    def give(self, seq_id: int) -> None:
        self._free.append(seq_id)

    @property
    def available(self) -> int:
        return len(self._free)


@dataclass(slots=True)
class CacheEntry:
    """A prefix whose KV lives under ``seq_id``."""

    seq_id: int
    tokens: tuple[int, ...]
    pinned: bool = False
    last_used: float = field(default_factory=time.monotonic)
    hits: int = 0


class PrefixCache:
    """Finished prompts and pinned warm prefixes, evicted least recently used first.

    Pinned entries (warm-up prefixes, and prompts pinned at run time under a key, at
    most ``max_pins`` of those) are never evicted.
    """

    def __init__(
        self,
        slots: Iterable[int],
        *,
        min_match: int = 2,
        max_pins: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = SeqIdPool(slots)
        self._entries: dict[int, CacheEntry] = {}
        self._min_match = min_match
        self._max_pins = max_pins
        self._pins: dict[str, int] = {}
        self._clock = clock

    @property
    def pins(self) -> dict[str, int]:
        """Run-time pins: key -> the slot that holds it."""
        return dict(self._pins)

    @property
    def entries(self) -> list[CacheEntry]:
        return list(self._entries.values())

    def lookup(
        self, prompt: Sequence[int], running: Iterable[tuple[int, Sequence[int]]] = ()
    ) -> tuple[int, int] | None:
        """Best source for ``prompt``'s prefix: ``(seq_id, n_tokens)`` or None.

        Looks at cache entries and at running sequences' computed tokens alike,
        so concurrent requests with one system prompt share it at once.
        """
        best, best_entry = self._best(prompt, running)
        if best_entry is not None:
            best_entry.last_used = self._clock()
            best_entry.hits += 1
        return best

    def match_len(
        self, prompt: Sequence[int], running: Iterable[tuple[int, Sequence[int]]] = ()
    ) -> int:
        """How many leading tokens of ``prompt`` could be copied now (no LRU touch)."""
        best, _ = self._best(prompt, running)
        return best[1] if best else 0

    def _best(
        self, prompt: Sequence[int], running: Iterable[tuple[int, Sequence[int]]]
    ) -> tuple[tuple[int, int] | None, CacheEntry | None]:
        best: tuple[int, int] | None = None
        best_entry: CacheEntry | None = None
        for entry in self._entries.values():
            n = common_prefix(entry.tokens, prompt)
            if n >= self._min_match and (best is None or n > best[1]):
                best, best_entry = (entry.seq_id, n), entry
        for seq_id, tokens in running:
            n = common_prefix(tokens, prompt)
            if n >= self._min_match and (best is None or n > best[1]):
                best, best_entry = (seq_id, n), None
        return best, best_entry

    def insert(self, tokens: Sequence[int], src_seq_id: int, *, pinned: bool = False) -> list[KVOp]:
        """Keep ``tokens`` (whose KV is under ``src_seq_id``) as a cache entry.

        Returns the KV operations that make it so; empty when an entry already
        covers these tokens or no slot can be freed.
        """
        key = tuple(tokens)
        if len(key) < self._min_match:
            return []
        ops: list[KVOp] = []
        for entry in list(self._entries.values()):
            n = common_prefix(entry.tokens, key)
            if n == len(key):  # already covered by a longer or equal entry
                entry.last_used = self._clock()
                if pinned and not entry.pinned and len(entry.tokens) == len(key):
                    entry.pinned = True
                return []
            if n == len(entry.tokens) and not entry.pinned:  # the new one supersedes it
                ops.extend(self._evict(entry))
        self._store(key, src_seq_id, pinned, ops)
        return ops

    def pin(self, key: str, tokens: Sequence[int], src_seq_id: int) -> list[KVOp]:
        """Keep ``tokens`` (KV under ``src_seq_id``) pinned under ``key``, in place of what
        ``key`` held; nothing new when ``max_pins`` other keys are pinned already.

        The pinned copy is its own entry, even where a longer unpinned one covers it, so
        evicting that one later cannot take the pinned head with it.
        """
        key_tokens = tuple(tokens)
        if len(key_tokens) < self._min_match:
            return []
        ops: list[KVOp] = []
        held = self._entries.get(self._pins.get(key, -1))
        if held is not None:
            if held.tokens == key_tokens:
                held.last_used = self._clock()
                return []
            ops.extend(self._evict(held))
        if len(self._pins) >= self._max_pins:
            return ops
        for entry in list(self._entries.values()):
            n = common_prefix(entry.tokens, key_tokens)
            if n == len(entry.tokens) and not entry.pinned:  # the pin supersedes it
                ops.extend(self._evict(entry))
        slot = self._store(key_tokens, src_seq_id, True, ops)
        if slot is not None:
            self._pins[key] = slot
        return ops

    def _store(
        self, tokens: tuple[int, ...], src_seq_id: int, pinned: bool, ops: list[KVOp]
    ) -> int | None:
        """Copy ``tokens`` into a free slot (evicting the LRU unpinned entry if none is
        free), adding the operations to ``ops``; the slot, or None when all are pinned."""
        slot = self._pool.take()
        if slot is None:
            victim = self._lru_unpinned()
            if victim is None:
                return None
            ops.extend(self._evict(victim))
            slot = self._pool.take()
            assert slot is not None
        self._entries[slot] = CacheEntry(slot, tokens, pinned=pinned, last_used=self._clock())
        ops.append(CopyKV(src_seq_id, slot, len(tokens)))
        return slot

    def reserve_slot(self, tokens: Sequence[int], *, pinned: bool = True) -> int | None:
        """Claim a slot to compute ``tokens`` into directly (warm-up); None if full."""
        slot = self._pool.take()
        if slot is None:
            return None
        self._entries[slot] = CacheEntry(
            slot, tuple(tokens), pinned=pinned, last_used=self._clock()
        )
        return slot

    def release(self, seq_id: int) -> list[KVOp]:
        """Drop one entry (e.g. a warm-up that failed)."""
        entry = self._entries.get(seq_id)
        return self._evict(entry) if entry else []

    def evict_lru(self, protect: int | None = None) -> list[KVOp]:
        """Evict the least recently used unpinned entry other than ``protect``; [] if none."""
        victim = self._lru_unpinned(exclude=protect)
        return self._evict(victim) if victim is not None else []

    def clear_unpinned(self) -> list[KVOp]:
        ops: list[KVOp] = []
        for entry in list(self._entries.values()):
            if not entry.pinned:
                ops.extend(self._evict(entry))
        return ops

    def _lru_unpinned(self, exclude: int | None = None) -> CacheEntry | None:
        candidates = [e for e in self._entries.values() if not e.pinned and e.seq_id != exclude]
        return min(candidates, key=lambda e: e.last_used, default=None)

    def _evict(self, entry: CacheEntry) -> list[KVOp]:
        del self._entries[entry.seq_id]
        for key in [k for k, slot in self._pins.items() if slot == entry.seq_id]:
            del self._pins[key]
        self._pool.give(entry.seq_id)
        return [FreeKV(entry.seq_id)]
