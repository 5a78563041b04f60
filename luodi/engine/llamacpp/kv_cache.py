"""KV bookkeeping: sequence-id slots and the prefix cache, without touching llama.cpp.

The engine uses one unified llama.cpp KV cache. Each running sequence and each
cached prefix owns a llama sequence id; ``llama_memory_seq_cp`` shares cells
between ids instead of copying them, so reusing a 1,000-token system prompt costs
almost nothing. This module decides *what* to copy and free; the runner executes
the resulting ``CopyKV``/``FreeKV`` operations before the next decode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["CacheEntry", "CopyKV", "FreeKV", "KVOp", "PrefixCache", "SeqIdPool", "common_prefix"]


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


KVOp = CopyKV | FreeKV


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

    Pinned entries (warm-up prefixes) are never evicted.
    """

    def __init__(
        self,
        slots: Iterable[int],
        *,
        min_match: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = SeqIdPool(slots)
        self._entries: dict[int, CacheEntry] = {}
        self._min_match = min_match
        self._clock = clock

    @property
    def entries(self) -> list[CacheEntry]:
        return list(self._entries.values())

    @property
    def cells(self) -> int:
        """Cells held by cache entries (an upper bound: shared cells count once per entry)."""
        return sum(len(e.tokens) for e in self._entries.values())

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
        slot = self._pool.take()
        if slot is None:
            victim = self._lru_unpinned()
            if victim is None:
                return ops
            ops.extend(self._evict(victim))
            slot = self._pool.take()
            assert slot is not None
        self._entries[slot] = CacheEntry(slot, key, pinned=pinned, last_used=self._clock())
        ops.append(CopyKV(src_seq_id, slot, len(key)))
        return ops

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

    def evict_for(self, cells_needed: int, protect: int | None = None) -> tuple[list[KVOp], int]:
        """Evict LRU unpinned entries until ``cells_needed`` cells are freed, or none are left."""
        ops: list[KVOp] = []
        freed = 0
        while freed < cells_needed:
            victim = self._lru_unpinned(exclude=protect)
            if victim is None:
                break
            freed += len(victim.tokens)
            ops.extend(self._evict(victim))
        return ops, freed

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
        self._pool.give(entry.seq_id)
        return [FreeKV(entry.seq_id)]
