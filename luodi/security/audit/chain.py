"""The hash chain: how a record's hash is computed, and how a chain is verified.

``hash = HMAC(key, canonical JSON of every column but hash)`` when the chain is
keyed (``ChainKey``), ``sha256(...)`` for records written before a key was set (the
legacy segment). ``prev_hash`` and ``seq`` are among the hashed columns, so editing
a record changes its hash, deleting one breaks the next record's link, and swapping
two breaks both; without the key nobody can compute a valid hash, so a rewritten
tail cannot be re-chained. A purge restarts the chain from an anchor (the last
purged record's hash) kept in ``audit_purges``, and the head row names the last
record. ``verify`` here walks the records; ``verifier.py`` checks the anchors, the
head and external checkpoints around it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from luodi.security.audit.event import AuditEvent

if TYPE_CHECKING:
    from luodi.security.audit.chain_key import ChainKey

__all__ = [
    "GENESIS_HASH",
    "HASHED_FIELDS",
    "Hasher",
    "VerifyReport",
    "event_fields",
    "record_hash",
    "verify",
]

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first record ever written."""

HASHED_FIELDS: tuple[str, ...] = (
    "seq",
    "ts_us",
    "kind",
    "user",
    "key_id",
    "tenant",
    "source_ip",
    "model",
    "endpoint",
    "backend",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "decision",
    "reason",
    "pii_json",
    "prompt_sha256",
    "response_sha256",
    "prompt_text",
    "response_text",
    "detail_json",
    "prev_hash",
)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(fields: Mapping[str, Any], key: ChainKey | None = None) -> str:
    """The hash of a record from its columns (``hash`` itself is ignored).

    With ``key`` it is the record's HMAC; without, the legacy SHA-256.
    """
    payload = _canonical([fields[name] for name in HASHED_FIELDS]).encode("utf-8")
    if key is not None:
        return key.record_mac(payload)
    return hashlib.sha256(payload).hexdigest()


Hasher = Callable[[Mapping[str, Any]], str | None]
"""Recomputes a record's hash for ``verify``; None when it cannot (links checked only)."""


def event_fields(event: AuditEvent, *, store_content: bool) -> dict[str, Any]:
    """The columns of a record for ``event``, without seq, prev_hash and hash."""
    return {
        "ts_us": int(event.time_us),
        "kind": event.kind,
        "user": event.user,
        "key_id": event.key_id,
        "tenant": event.tenant,
        "source_ip": event.source_ip,
        "model": event.model,
        "endpoint": event.endpoint,
        "backend": event.backend,
        "prompt_tokens": int(event.prompt_tokens),
        "completion_tokens": int(event.completion_tokens),
        # Rounded so the float survives every backend's storage bit for bit.
        "latency_ms": round(float(event.latency_ms), 3),
        "decision": str(event.decision),
        "reason": event.reason,
        "pii_json": _canonical({str(k): int(v) for k, v in event.pii_findings.items()}),
        "prompt_sha256": event.prompt_sha256,
        "response_sha256": event.response_sha256,
        "prompt_text": event.prompt_text if store_content else None,
        "response_text": event.response_text if store_content else None,
        "detail_json": _canonical(event.detail),
    }


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of a chain verification.

    The first four fields are the original report (scripts read them); the rest
    were added with the keyed chain.

    Attributes:
        ok: True when every record, anchor, the head and every checkpoint check out.
        checked: Records examined.
        first_bad_seq: Sequence number of the first bad record (or where one is missing).
        problem: What is wrong there, in words.
        keyed: True when the records after the latest key anchor were checked with
            the configured key (their MACs, the head's and the anchors').
        key_id: Id of the configured audit key, if any.
        keyed_from_seq: Records after this seq are keyed (the key anchor), if any.
        legacy_records: Records checked before the key anchor (plain SHA-256 chain,
            pinned by the anchor but forgeable by whoever could write them then).
        start_seq: Seq the walk started after (the latest purge anchor, or 0).
        head_seq: Seq of the last record, per the head row.
        head_hash: Hash of the last record, per the head row.
        checkpoints_checked: External checkpoints compared with the chain.
        warnings: Things that do not break the chain but limit what was proven.
    """

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None
    keyed: bool = False
    key_id: str | None = None
    keyed_from_seq: int | None = None
    legacy_records: int = 0
    start_seq: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    checkpoints_checked: int = 0
    warnings: list[str] = field(default_factory=list)


def verify(
    rows: Iterable[Mapping[str, Any]],
    *,
    start_seq: int,
    start_hash: str,
    head_seq: int,
    head_hash: str,
    hasher: Hasher | None = None,
    pins: Mapping[int, tuple[str, str]] | None = None,
) -> VerifyReport:
    """Walk records in ``seq`` order from an anchor and check every link.

    Args:
        rows: Records ordered by seq, each a mapping of columns.
        start_seq: Seq of the anchor (0 at genesis, else the last purged record).
        start_hash: Hash of the anchor.
        head_seq: Seq the head row says is last.
        head_hash: Hash the head row says is last.
        hasher: Recomputes a record's hash (default: the legacy SHA-256).
        pins: seq → (hash it must have, what says so): key anchors, checkpoints.
    """
    rehash: Hasher = hasher or record_hash
    pins = pins or {}
    expected_seq, prev = start_seq + 1, start_hash
    checked = 0
    for row in rows:
        seq = int(row["seq"])
        if seq != expected_seq:
            bad = expected_seq if seq > expected_seq else seq
            what = "missing (deleted)" if seq > expected_seq else "out of order or duplicated"
            return VerifyReport(False, checked, bad, f"record {bad} is {what}")
        if row["prev_hash"] != prev:
            return VerifyReport(
                False,
                checked,
                seq,
                f"record {seq} does not link to record {seq - 1} "
                "(a record before it was deleted, reordered or edited)",
            )
        recomputed = rehash(row)
        if recomputed is not None and recomputed != row["hash"]:
            return VerifyReport(
                False, checked, seq, f"record {seq} was edited or re-chained (hash mismatch)"
            )
        pin = pins.get(seq)
        if pin is not None and pin[0] != row["hash"]:
            return VerifyReport(
                False, checked, seq, f"record {seq} differs from {pin[1]} (rewritten)"
            )
        prev, expected_seq = row["hash"], seq + 1
        checked += 1
    last_seq = expected_seq - 1
    if last_seq != head_seq:
        if last_seq < head_seq:
            return VerifyReport(
                False,
                checked,
                last_seq + 1,
                f"records {last_seq + 1}..{head_seq} are missing (deleted from the end)",
            )
        return VerifyReport(False, checked, head_seq + 1, f"record {head_seq + 1} is past the head")
    if head_seq > start_seq and prev != head_hash:
        return VerifyReport(False, checked, head_seq, f"record {head_seq} differs from the head")
    return VerifyReport(True, checked)
