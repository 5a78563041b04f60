"""``PayloadTable``: distinct access tags and metadata of an index's rows, filterable at once.

Every chunk of a document shares its payload's tags and metadata, so an index keeps
one small integer per row and this table of the distinct ``(tags, meta)`` pairs. A
``Filter`` becomes a boolean mask over the table through inverted lists (tag →
entries, ``key=value`` → entries), never a Python call per row or per entry, and
the index applies it to all its rows with one gather: ``allowed[payload_of[rows]]``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from luodi.knowledge.types import Filter, Payload

__all__ = ["PayloadTable"]

_Key = tuple[frozenset[str], tuple[tuple[str, str], ...]]


def _key(tags: frozenset[str], meta: Mapping[str, str]) -> _Key:
    return tags, tuple(sorted(meta.items()))


class PayloadTable:
    """Interned ``(tags, meta)`` pairs with inverted lists for filtering."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._index: dict[_Key, int] = {}
        self._entries: list[_Key] = []
        self._by_tag: dict[str, list[int]] = {}
        self._by_meta: dict[tuple[str, str], list[int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def intern(self, payload: Payload) -> int:
        """The entry number of ``payload``'s tags and metadata, added if new."""
        key = _key(payload.tags, payload.meta)
        entry = self._index.get(key)
        if entry is None:
            entry = self._index[key] = len(self._entries)
            self._entries.append(key)
            for tag in key[0]:
                self._by_tag.setdefault(tag, []).append(entry)
            for item in key[1]:
                self._by_meta.setdefault(item, []).append(entry)
        return entry

    def entry(self, number: int) -> tuple[frozenset[str], dict[str, str]]:
        """Tags and metadata of an entry."""
        tags, meta = self._entries[number]
        return tags, dict(meta)

    def allowed(self, flt: Filter) -> NDArray[np.bool_]:
        """One flag per entry: whether rows with it pass ``flt``."""
        n = len(self._entries)
        if flt.tags is None:
            mask = np.ones(n, dtype=bool)
        else:
            mask = np.zeros(n, dtype=bool)
            for tag in flt.tags:
                entries = self._by_tag.get(tag)
                if entries:
                    mask[entries] = True
        for item in flt.meta.items():
            entries = self._by_meta.get(item)
            if not entries:
                return np.zeros(n, dtype=bool)
            match = np.zeros(n, dtype=bool)
            match[entries] = True
            mask &= match
        return mask

    def compact(self, used: NDArray[np.int32]) -> NDArray[np.int32]:
        """Keep only the entries in ``used``; returns old number → new number.

        Entries no row refers to any more (an erased subject's metadata) are forgotten.
        """
        keep = sorted(set(used.tolist()))
        remap = np.full(max(len(self._entries), 1), -1, dtype=np.int32)
        entries = [self._entries[i] for i in keep]
        self._reset()
        for new, (old, (tags, meta)) in enumerate(zip(keep, entries, strict=True)):
            remap[old] = new
            self.intern(Payload("", tags, dict(meta)))
        return remap
