"""Reading the audit log: query, export (JSONL, CSV), verify, checkpoint, and purge.

Records are never updated. The only deletion is ``purge``, which removes a prefix of
the chain older than the retention period (at least 180 days) and leaves an anchor
(MAC'd when the chain is keyed) so the rest still verifies.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TextIO, cast

from sqlalchemy import Select, Table, delete, func, insert, select

from luodi.errors import InvalidRequestError
from luodi.security.audit.chain import VerifyReport
from luodi.security.audit.chain_key import ChainKey
from luodi.security.audit.checkpoint import Checkpoint, make_checkpoint
from luodi.security.audit.usage import KeyUsage, key_usage_query
from luodi.security.audit.verifier import purge_fields, verify_trail
from luodi.storage import AuditChainHeadRow, AuditPurgeRow, AuditRecordRow, Database

__all__ = ["AuditFilter", "AuditLog", "PurgeResult", "record_to_dict"]

_US_PER_DAY = 86_400 * 1_000_000
_RECORDS = cast(Table, AuditRecordRow.__table__)
_PURGES = cast(Table, AuditPurgeRow.__table__)
_HEAD = cast(Table, AuditChainHeadRow.__table__)
EXPORT_COLUMNS: tuple[str, ...] = ("time", *(c.key for c in _RECORDS.columns))


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which records to read; every field narrows, ``None`` means any."""

    since_us: int | None = None
    until_us: int | None = None
    user: str | None = None
    tenant: str | None = None
    after_seq: int | None = None
    tenants: tuple[str, ...] | None = None
    """Only these tenants' records (a tenant-scoped auditor's reach); None is any."""

    def apply(self, query: Select[Any]) -> Select[Any]:
        """Add this filter's conditions to a query on audit_records."""
        c = _RECORDS.c
        if self.since_us is not None:
            query = query.where(c.ts_us >= self.since_us)
        if self.until_us is not None:
            query = query.where(c.ts_us < self.until_us)
        if self.user is not None:
            query = query.where(c.user == self.user)
        if self.tenant is not None:
            query = query.where(c.tenant == self.tenant)
        if self.after_seq is not None:
            query = query.where(c.seq > self.after_seq)
        if self.tenants is not None:
            query = query.where(c.tenant.in_(self.tenants))
        return query


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What a purge removed: records with ``seq`` up to ``through_seq``."""

    deleted: int
    through_seq: int


def record_to_dict(row: Any) -> dict[str, Any]:
    """A record as plain JSON-ready data, with an ISO ``time`` added."""
    data = dict(row._mapping)
    data["time"] = datetime.fromtimestamp(data["ts_us"] / 1e6, tz=UTC).isoformat()
    return data


class AuditLog:
    """Read access and maintenance of the audit chain (synchronous)."""

    def __init__(self, db: Database, *, retention_days: int, key: ChainKey | None = None) -> None:
        self._db = db
        self.retention_days = retention_days
        self.key = key

    def query(self, flt: AuditFilter, *, limit: int = 100) -> list[dict[str, Any]]:
        """Records matching ``flt`` in chain order, at most ``limit``."""
        query = flt.apply(select(_RECORDS)).order_by(_RECORDS.c.seq).limit(limit)
        with self._db.engine.connect() as conn:
            return [record_to_dict(row) for row in conn.execute(query)]

    def iter_records(self, flt: AuditFilter) -> Iterator[dict[str, Any]]:
        """Every matching record in chain order, streamed."""
        query = flt.apply(select(_RECORDS)).order_by(_RECORDS.c.seq)
        with self._db.engine.connect() as conn:
            result = conn.execution_options(yield_per=1000).execute(query)
            for row in result:
                yield record_to_dict(row)

    def key_usage(self, flt: AuditFilter) -> list[KeyUsage]:
        """Requests, refusals and tokens per key among the records matching ``flt``."""
        with self._db.engine.connect() as conn:
            return [KeyUsage.from_row(row) for row in conn.execute(key_usage_query(flt))]

    def export(self, flt: AuditFilter, out: TextIO, *, fmt: Literal["jsonl", "csv"]) -> int:
        """Write matching records to ``out``; returns how many."""
        count = 0
        writer = None
        if fmt == "csv":
            writer = csv.DictWriter(out, fieldnames=list(EXPORT_COLUMNS))
            writer.writeheader()
        for record in self.iter_records(flt):
            if writer is not None:
                writer.writerow(record)
            else:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
        return count

    def verify(
        self, checkpoints: Sequence[Checkpoint] = (), *, now_us: int | None = None
    ) -> VerifyReport:
        """Check the chain, its anchors and head, and any external ``checkpoints``."""
        return verify_trail(
            self._db,
            key=self.key,
            retention_days=self.retention_days,
            checkpoints=checkpoints,
            now_us=now_us,
        )

    def head(self) -> Checkpoint:
        """A checkpoint of the head as it is now (not verified: see ``checkpoint``)."""
        with self._db.engine.connect() as conn:
            seq, hash_ = conn.execute(
                select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1)
            ).one()
        return make_checkpoint(seq, hash_, self.key)

    def checkpoint(self) -> tuple[VerifyReport, Checkpoint | None]:
        """Verify the chain, then sign its head; no checkpoint when verification fails."""
        report = self.verify()
        if not report.ok:
            return report, None
        return report, make_checkpoint(report.head_seq, report.head_hash, self.key)

    def purge(
        self, before_us: int, *, principal: str | None = None, now_us: int | None = None
    ) -> PurgeResult:
        """Delete the records older than ``before_us`` from the start of the chain.

        Only a prefix of the chain is removed: it stops at the first record at or
        after ``before_us``, so a late-stamped record never leaves a hole.

        Raises:
            InvalidRequestError: ``before_us`` is inside the retention period.
        """
        now_us = now_us if now_us is not None else time.time_ns() // 1000
        youngest_allowed = now_us - self.retention_days * _US_PER_DAY
        if before_us > youngest_allowed:
            limit = datetime.fromtimestamp(youngest_allowed / 1e6, tz=UTC).isoformat()
            raise InvalidRequestError(
                f"refusing to purge records younger than the {self.retention_days}-day "
                f"retention period: the cutoff must be at or before {limit}",
                param="before",
            )
        c = _RECORDS.c
        with self._db.engine.begin() as conn:
            first_kept = conn.execute(select(func.min(c.seq)).where(c.ts_us >= before_us)).scalar()
            if first_kept is None:
                first_kept = conn.execute(select(func.max(c.seq))).scalar()
                first_kept = (first_kept or 0) + 1
            through = conn.execute(
                select(c.seq, c.hash).where(c.seq < first_kept).order_by(c.seq.desc()).limit(1)
            ).first()
            if through is None:
                return PurgeResult(deleted=0, through_seq=0)
            deleted = conn.execute(delete(_RECORDS).where(c.seq <= through[0])).rowcount
            anchor = {
                "purged_us": now_us,
                "cutoff_us": before_us,
                "through_seq": through[0],
                "through_hash": through[1],
                "deleted": deleted,
            }
            mac = self.key.mac("purge", purge_fields(anchor)) if self.key else None
            conn.execute(insert(_PURGES).values(**anchor, principal=principal, mac=mac))
        return PurgeResult(deleted=deleted, through_seq=through[0])
