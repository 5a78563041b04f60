"""The hash chain: how a record's hash is computed, and how a chain is verified.

``hash = sha256(canonical JSON of every column but hash)``; ``prev_hash`` and ``seq``
are among the hashed columns, so editing a record changes its hash, deleting one
breaks the next record's link, and swapping two breaks both. A purge restarts the
chain from an anchor (the last purged record's hash) kept in ``audit_purges``, and
the head row names the last record so deleting the newest records is caught too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from luodi.security.audit.event import AuditEvent

__all__ = ["GENESIS_HASH", "HASHED_FIELDS", "VerifyReport", "event_fields", "record_hash", "verify"]

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


def record_hash(fields: Mapping[str, Any]) -> str:
    """The hash of a record from its columns (``hash`` itself is ignored)."""
    payload = _canonical([fields[name] for name in HASHED_FIELDS])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


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

    Attributes:
        ok: True when every record checks out.
        checked: Records examined.
        first_bad_seq: Sequence number of the first bad record (or where one is missing).
        problem: What is wrong there, in words.
    """

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None


def verify(
    rows: Iterable[Mapping[str, Any]],
    *,
    start_seq: int,
    start_hash: str,
    head_seq: int,
    head_hash: str,
) -> VerifyReport:
    """Walk records in ``seq`` order from an anchor and check every link.

    Args:
        rows: Records ordered by seq, each a mapping of columns.
        start_seq: Seq of the anchor (0 at genesis, else the last purged record).
        start_hash: Hash of the anchor.
        head_seq: Seq the head row says is last.
        head_hash: Hash the head row says is last.
    """
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
        if record_hash(row) != row["hash"]:
            return VerifyReport(False, checked, seq, f"record {seq} was edited (hash mismatch)")
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
