"""Prefix-cache bookkeeping: LRU eviction, pinning, superseding."""

from __future__ import annotations

from luodi.engine.llamacpp.kv_cache import CopyKV, FreeKV, PrefixCache, common_prefix


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
