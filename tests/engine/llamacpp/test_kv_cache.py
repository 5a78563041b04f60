"""KV bookkeeping: cells in use, LRU eviction, pinning, superseding."""

from __future__ import annotations

from luodi.engine.llamacpp.kv_cache import CellLedger, CopyKV, FreeKV, PrefixCache, common_prefix


class Tick:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def test_common_prefix_counts_shared_tokens() -> None:
    a = list(range(300))
    assert common_prefix(a, [*range(200), 7]) == 200
    assert common_prefix(a, a) == 300
    assert common_prefix([], a) == 0


def test_least_recently_used_entry_is_evicted_first() -> None:
    cache = PrefixCache([10, 11], clock=Tick())
    cache.insert([1, 2, 3], src_seq_id=0)
    cache.insert([4, 5, 6], src_seq_id=1)
    assert cache.lookup([1, 2, 3, 9]) is not None  # touches the first entry
    ops = cache.insert([7, 8, 9], src_seq_id=2)
    assert any(isinstance(op, FreeKV) for op in ops)
    assert cache.lookup([4, 5, 6]) is None
    assert cache.lookup([1, 2, 3]) is not None


def test_pinned_prefix_is_never_evicted() -> None:
    cache = PrefixCache([10, 11], clock=Tick())
    slot = cache.reserve_slot([1, 2, 3, 4], pinned=True)
    assert slot is not None
    for i in range(5):
        cache.insert([50 + i, 60 + i, 70 + i], src_seq_id=0)
    assert cache.lookup([1, 2, 3, 4, 5]) == (slot, 4)


def test_longer_prompt_supersedes_its_own_prefix() -> None:
    cache = PrefixCache([10, 11, 12], clock=Tick())
    cache.insert([1, 2, 3], src_seq_id=0)
    ops = cache.insert([1, 2, 3, 4, 5], src_seq_id=1)
    assert any(isinstance(op, FreeKV) for op in ops)
    assert any(isinstance(op, CopyKV) and op.n_tokens == 5 for op in ops)
    assert len(cache.entries) == 1


def test_prompt_already_covered_adds_nothing() -> None:
    cache = PrefixCache([10, 11], clock=Tick())
    cache.insert([1, 2, 3, 4], src_seq_id=0)
    assert cache.insert([1, 2, 3], src_seq_id=1) == []


def test_ledger_counts_cells_shared_by_a_copy_once() -> None:
    ledger = CellLedger()
    ledger.grow(0, 100)
    ledger.apply(CopyKV(0, 1, 60))
    assert ledger.used == 100
    ledger.grow(1, 5)  # the copy's new tokens take cells of their own
    ledger.grow(0, 3)
    assert ledger.used == 108
    assert ledger.held(1) == 65


def test_ledger_keeps_shared_cells_until_their_last_holder_frees_them() -> None:
    ledger = CellLedger()
    ledger.grow(0, 100)
    ledger.apply(CopyKV(0, 1, 60))
    ledger.apply(CopyKV(1, 2, 30))  # a copy of a copy shares the original's cells
    ledger.apply(FreeKV(0))
    assert ledger.used == 60
    ledger.apply(FreeKV(1))
    assert ledger.used == 30
    ledger.apply(FreeKV(2))
    assert ledger.used == 0


def test_ledger_copy_spans_the_sources_own_and_shared_cells() -> None:
    ledger = CellLedger()
    ledger.grow(0, 10)
    ledger.apply(CopyKV(0, 1, 10))
    ledger.grow(1, 10)
    ledger.apply(CopyKV(1, 2, 15))  # 10 of 0's cells, then 5 of 1's own
    ledger.apply(FreeKV(0))
    ledger.apply(FreeKV(1))
    assert ledger.used == 15


def test_evicting_the_lru_entry_spares_the_protected_one() -> None:
    cache = PrefixCache([10, 11], clock=Tick())
    cache.insert([1, 2, 3], src_seq_id=0)
    cache.insert([4, 5, 6], src_seq_id=1)
    assert cache.evict_lru(protect=10) == [FreeKV(11)]
    assert cache.evict_lru(protect=10) == []


def test_a_pinned_prompt_outlives_a_stream_of_other_prompts() -> None:
    cache = PrefixCache([10, 11, 12], max_pins=1, clock=Tick())
    ops = cache.pin("persona", [1, 2, 3, 4], src_seq_id=0)
    assert ops == [CopyKV(0, ops[-1].dst, 4)]  # type: ignore[union-attr]
    for i in range(10):
        cache.insert([50 + i, 60 + i, 70 + i], src_seq_id=1)
    assert cache.lookup([1, 2, 3, 4, 99]) == (ops[-1].dst, 4)  # type: ignore[union-attr]
    assert cache.pins == {"persona": ops[-1].dst}  # type: ignore[union-attr]


def test_pinning_a_key_again_replaces_its_prompt_and_the_same_prompt_is_free() -> None:
    cache = PrefixCache([10, 11, 12], max_pins=2, clock=Tick())
    first = cache.pin("persona", [1, 2, 3, 4], src_seq_id=0)
    assert cache.pin("persona", [1, 2, 3, 4], src_seq_id=0) == []  # already held
    second = cache.pin("persona", [1, 2, 9, 9], src_seq_id=0)
    assert FreeKV(first[-1].dst) in second  # type: ignore[union-attr]
    assert cache.lookup([1, 2, 9, 9, 5]) == (second[-1].dst, 4)  # type: ignore[union-attr]
    assert list(cache.pins) == ["persona"]


def test_pins_are_bounded_so_unpinned_prompts_keep_room() -> None:
    cache = PrefixCache([10, 11, 12], max_pins=1, clock=Tick())
    assert cache.pin("a", [1, 2, 3], src_seq_id=0)
    assert cache.pin("b", [4, 5, 6], src_seq_id=0) == []  # over the bound: not pinned
    assert list(cache.pins) == ["a"]
    assert PrefixCache([10], clock=Tick()).pin("a", [1, 2, 3], src_seq_id=0) == []  # 0 pins


def test_a_pin_supersedes_the_unpinned_entry_it_extends() -> None:
    cache = PrefixCache([10, 11], max_pins=1, clock=Tick())
    cache.insert([1, 2, 3], src_seq_id=0)
    ops = cache.pin("head", [1, 2, 3, 4], src_seq_id=1)
    assert any(isinstance(op, FreeKV) for op in ops)
    assert len(cache.entries) == 1 and cache.entries[0].pinned
