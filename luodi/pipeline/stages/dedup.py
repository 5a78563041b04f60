"""Exact dedup (content hash) and near-dup (MinHash LSH), both across every shard of a run.

Both are stateful: the runner feeds them every batch in input order in one process and
checkpoints ``state()`` with each finished shard, so a resumed run decides exactly as an
uninterrupted one. The first record of a duplicate group is kept; later ones are rejected
with the kept record's id in ``detail``.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from typing import Any

from luodi.pipeline.records import SIGNATURE
from luodi.pipeline.spec import DedupExactSpec, DedupNearSpec
from luodi.pipeline.stage import Batch, Outcome, Rejection

__all__ = ["DedupExact", "DedupNear", "shingles"]

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")
_WORD = re.compile(r"\w+", re.UNICODE)


def record_ref(record: dict[str, Any], fallback: int) -> str:
    """A record's id for the rejected file: its ``id`` field, else its input line."""
    rid = record.get("id", record.get("_line", fallback))
    return str(rid)


class DedupExact:
    """Keeps the first record of each distinct text (BLAKE2b-128 of the UTF-8 text)."""

    name = "dedup_exact"
    stateful = True

    def __init__(self, spec: DedupExactSpec) -> None:
        self.spec = spec
        self._seen: dict[bytes, str] = {}

    def _key(self, text: str) -> bytes:
        if self.spec.lowercase:
            text = text.lower()
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()

    def __call__(self, batch: Batch) -> Outcome:
        out = Outcome(kept=[], stats=Counter())
        for i, record in enumerate(batch):
            key = self._key(record["text"])
            first = self._seen.get(key)
            if first is not None:
                out.rejected.append(
                    Rejection(record, "exact_dup", f"same text as {first}", duplicate_of=first)
                )
                continue
            self._seen[key] = record_ref(record, i)
            out.kept.append(record)
        return out

    def state(self) -> object:
        return self._seen

    def load_state(self, state: object) -> None:
        assert isinstance(state, dict)
        self._seen = state


def shingles(text: str, char_ngram: int, word_ngram: int) -> set[bytes]:
    """Character n-grams for CJK-heavy text, word n-grams otherwise (lower-cased)."""
    text = text.lower()
    cjk = len(_CJK.findall(text))
    if cjk * 3 >= len(text.replace(" ", "")):
        chars = "".join(ch for ch in text if not ch.isspace())
        n = min(char_ngram, max(1, len(chars)))
        return {chars[i : i + n].encode() for i in range(len(chars) - n + 1)}
    words = _WORD.findall(text)
    n = min(word_ngram, max(1, len(words)))
    return {" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)}


class DedupNear:
    """datasketch MinHash over shingles, an LSH index of every kept record's signature."""

    name = "dedup_near"
    stateful = True

    def __init__(self, spec: DedupNearSpec) -> None:
        from datasketch import MinHash, MinHashLSH  # type: ignore[import-untyped]

        self.spec = spec
        self._minhash = MinHash
        self._lsh = MinHashLSH(threshold=spec.threshold, num_perm=spec.num_perm)
        self._count = 0
        # One permutation set shared by every signature: building it is most of a MinHash's
        # construction cost.
        self._template = MinHash(num_perm=spec.num_perm, seed=spec.seed)

    def signature(self, text: str) -> Any:
        m = self._template.copy()
        grams = shingles(text, self.spec.char_ngram, self.spec.word_ngram)
        if grams:
            m.update_batch(list(grams))
        return m

    def prepare(self, batch: Batch) -> Batch:
        """Stateless half: each record's signature, computed wherever the batch is.

        The runner calls it on the pool (it is most of the stage's cost); ``__call__``
        then only queries and updates the index.
        """
        return [{**r, SIGNATURE: self.signature(r["text"]).hashvalues} for r in batch]

    def __call__(self, batch: Batch) -> Outcome:
        out = Outcome(kept=[], stats=Counter())
        for record in batch:
            values = record.pop(SIGNATURE, None)
            if values is None:
                m = self.signature(record["text"])
            else:
                m = self._minhash(hashvalues=values, scheme=self._template.scheme)
            similar = self._lsh.query(m)
            if similar:
                first = min(similar)
                kept = first.rpartition("#")[0] or first  # the index key is "<ref>#<n>"
                out.rejected.append(
                    Rejection(record, "near_dup", f"similar to {first}", duplicate_of=kept)
                )
                continue
            key = f"{record_ref(record, self._count)}#{self._count}"
            self._count += 1
            self._lsh.insert(key, m, check_duplication=False)
            out.kept.append(record)
        return out

    def state(self) -> object:
        return (self._lsh, self._count)

    def load_state(self, state: object) -> None:
        assert isinstance(state, tuple)
        self._lsh, self._count = state
