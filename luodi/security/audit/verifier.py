"""Verifying the whole audit trail: purge anchors, key anchors, head, checkpoints.

``chain.verify`` walks the records; this module decides where the walk starts and
what each part must hash to, from the tables around the records:

* **Purge anchors** must respect the retention floor (a purge never removes a
  record younger than 180 days, so an anchor whose cutoff is newer is forged), may
  not be dated in the future, and carry a MAC when the records they removed were
  keyed. The first record kept must be at or after the cutoff.
* **Key anchors** say from which record the chain is keyed; each carries a MAC, and
  pins the hash of the record it continues from, so the legacy (unkeyed) part
  before it cannot be rewritten either.
* **The head row** carries a MAC of (seq, hash): it cannot be reset to an earlier
  record without the key.
* **Checkpoints** kept outside the database pin (seq, hash) pairs: a chain rolled
  back, wiped or rewritten after a checkpoint no longer contains it.

What stays out of reach: someone holding the key can forge everything, and someone
who kept an old copy of the head row can roll the database back to it. Only an
external checkpoint newer than that copy catches the second.
"""

from __future__ import annotations

import bisect
import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, func, select

from luodi.security.audit.chain import GENESIS_HASH, Hasher, VerifyReport, record_hash, verify
from luodi.security.audit.chain_key import ChainKey
from luodi.security.audit.checkpoint import Checkpoint
from luodi.storage import (
    AuditChainHeadRow,
    AuditKeyAnchorRow,
    AuditPurgeRow,
    AuditRecordRow,
    Database,
)

__all__ = ["MIN_RETENTION_DAYS", "verify_trail"]

MIN_RETENTION_DAYS = 180
"""No purge may remove a record younger than this, whatever the configuration."""

_US_PER_DAY = 86_400 * 1_000_000
_CLOCK_SKEW_US = 5 * 60 * 1_000_000
_RECORDS = cast(Table, AuditRecordRow.__table__)
_PURGES = cast(Table, AuditPurgeRow.__table__)
_HEAD = cast(Table, AuditChainHeadRow.__table__)
_ANCHORS = cast(Table, AuditKeyAnchorRow.__table__)


class _Broken(Exception):
    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


def purge_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """What a purge anchor's MAC covers."""
    names = ("through_seq", "through_hash", "cutoff_us", "purged_us", "deleted")
    return {name: row[name] for name in names}


def anchor_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """What a key anchor's MAC covers."""
    return {name: row[name] for name in ("after_seq", "after_hash", "key_id", "created_us")}


def _time(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat()


class _Trail:
    """One verification: the tables read once, then checked part by part."""

    def __init__(
        self,
        conn: Any,
        key: ChainKey | None,
        retention_days: int,
        checkpoints: Sequence[Checkpoint],
        now_us: int,
    ) -> None:
        self.conn = conn
        self.key = key
        self.retention_days = retention_days
        self.checkpoints = checkpoints
        self.now_us = now_us
        self.warnings: list[str] = []
        self.purges = [
            dict(r._mapping) for r in conn.execute(select(_PURGES).order_by(_PURGES.c.id))
        ]
        self.anchors = [
            dict(r._mapping)
            for r in conn.execute(select(_ANCHORS).order_by(_ANCHORS.c.after_seq, _ANCHORS.c.id))
        ]
        self.head = dict(conn.execute(select(_HEAD).where(_HEAD.c.id == 1)).one()._mapping)
        self.start_seq, self.start_hash = 0, GENESIS_HASH
        self.pins: dict[int, tuple[str, str]] = {}
        self.legacy = 0
        self.unverifiable = 0

    # -- parts ---------------------------------------------------------------------

    def check_purges(self) -> None:
        keyed_since = min((a["after_seq"] for a in self.anchors), default=None)
        last_through = 0
        for purge in self.purges:
            through = purge["through_seq"]
            where = f"purge anchor through record {through}"
            if through <= last_through:
                raise _Broken(through, f"{where} does not follow the one before it (forged)")
            if purge["purged_us"] > self.now_us + _CLOCK_SKEW_US:
                raise _Broken(through + 1, f"{where} is dated in the future (forged)")
            floor = purge["purged_us"] - MIN_RETENTION_DAYS * _US_PER_DAY
            if purge["cutoff_us"] > floor:
                raise _Broken(
                    through + 1,
                    f"{where} claims a cutoff of {_time(purge['cutoff_us'])}, inside the "
                    f"{MIN_RETENTION_DAYS}-day minimum retention at its purge time (forged anchor "
                    "hiding records)",
                )
            if purge["cutoff_us"] > purge["purged_us"] - self.retention_days * _US_PER_DAY:
                self.warnings.append(
                    f"{where} purged records younger than today's {self.retention_days}-day "
                    "retention (allowed by the retention in force then?)"
                )
            if purge["mac"] is not None:
                if self.key is None:
                    self.warnings.append(f"{where} is keyed but no audit key is configured")
                elif not self.key.check("purge", purge_fields(purge), purge["mac"]):
                    raise _Broken(through + 1, f"{where} has an invalid MAC (forged)")
            elif keyed_since is not None and keyed_since < through:
                raise _Broken(
                    through + 1,
                    f"{where} has no MAC although the records it removed were keyed (forged)",
                )
            last_through = through
            self.start_seq, self.start_hash = through, purge["through_hash"]
        if self.purges:
            latest = self.purges[-1]
            first_ts = self.conn.execute(
                select(_RECORDS.c.ts_us).where(_RECORDS.c.seq == self.start_seq + 1)
            ).scalar()
            if first_ts is not None and first_ts < latest["cutoff_us"]:
                raise _Broken(
                    self.start_seq + 1,
                    f"record {self.start_seq + 1} predates the cutoff of the purge before it "
                    "(a purge stops at the first younger record: forged anchor)",
                )

    def check_key_anchors(self) -> None:
        key, head = self.key, self.head
        if key is None:
            if self.anchors or head["key_id"] is not None:
                self.warnings.append(
                    f"the chain is keyed (key {head['key_id'] or self.anchors[-1]['key_id']}) "
                    "but no audit key is configured: links were checked, record MACs not"
                )
            return
        ours = [a for a in self.anchors if a["key_id"] == key.key_id]
        for anchor in ours:
            if not key.check("anchor", anchor_fields(anchor), anchor["mac"]):
                raise _Broken(
                    anchor["after_seq"] + 1,
                    f"key anchor after record {anchor['after_seq']} has an invalid MAC (forged)",
                )
        if ours:
            first = ours[0]["after_seq"]
            for anchor in self.anchors:
                if anchor["after_seq"] >= first and anchor["key_id"] != key.key_id:
                    raise _Broken(
                        anchor["after_seq"] + 1,
                        f"key anchor after record {anchor['after_seq']} names key "
                        f"{anchor['key_id']}, not the configured key, inside its keyed segment "
                        "(forged to stop MAC checks)",
                    )
            head_fields = {"seq": head["seq"], "hash": head["hash"]}
            if head["key_id"] != key.key_id or not key.check("head", head_fields, head["mac"]):
                raise _Broken(
                    head["seq"],
                    f"the chain head (record {head['seq']}) has an invalid MAC: it was reset "
                    "or rewritten (records deleted from the end?)",
                )
            return
        if head["key_id"] == key.key_id:
            raise _Broken(
                head["seq"], "the head is keyed with the configured key but no key anchor exists"
            )
        if head["key_id"] is not None or self.anchors:
            other = head["key_id"] or self.anchors[-1]["key_id"]
            raise _Broken(
                head["seq"],
                f"the chain is keyed with key {other}, not the configured key {key.key_id} "
                "(after a key rotation, verify once a record has been written under the new key)",
            )
        self.warnings.append(
            "the chain is not keyed yet: it is a plain hash chain until the first record is "
            "written with the configured key"
        )

    def collect_pins(self) -> None:
        for anchor in self.anchors:
            self._pin(anchor["after_seq"], anchor["after_hash"], "its key anchor")
        for cp in self.checkpoints:
            what = f"the checkpoint of {cp.time}"
            if cp.mac is not None and self.key is not None:
                if cp.key_id != self.key.key_id:
                    self.warnings.append(f"{what} is signed by another key; seq/hash compared only")
                elif not self.key.check("checkpoint", cp.signed_fields(), cp.mac):
                    raise _Broken(cp.seq, f"{what} has an invalid MAC (not made with this key)")
            if cp.seq > self.head["seq"]:
                raise _Broken(
                    self.head["seq"] + 1,
                    f"records {self.head['seq'] + 1}..{cp.seq} named by {what} are missing "
                    "(removed from the end, wiped, or rolled back)",
                )
            if cp.seq < self.start_seq:
                self.warnings.append(f"{what} (record {cp.seq}) predates the latest purge")
                continue
            self._pin(cp.seq, cp.hash, what)

    def _pin(self, seq: int, hash_: str, what: str) -> None:
        if seq < self.start_seq:
            return
        if seq == self.start_seq:
            if hash_ != self.start_hash:
                raise _Broken(seq, f"record {seq} (where the chain starts) differs from {what}")
            return
        known = self.pins.get(seq)
        if known is not None and known[0] != hash_:
            raise _Broken(seq, f"{known[1]} and {what} disagree about record {seq}")
        self.pins[seq] = (hash_, what)

    def hasher(self) -> Hasher:
        bounds = [a["after_seq"] for a in self.anchors]
        key_ids = [a["key_id"] for a in self.anchors]
        key = self.key

        def rehash(row: Mapping[str, Any]) -> str | None:
            at = bisect.bisect_left(bounds, row["seq"]) - 1
            key_id = key_ids[at] if at >= 0 else None
            if key is not None and key_id == key.key_id:
                return record_hash(row, key)
            self.legacy += 1
            if key_id is None:
                return record_hash(row)
            self.unverifiable += 1
            return None  # keyed with a key we do not hold: links only

        return rehash

    def walk(self) -> VerifyReport:
        head = self.head
        rows: Iterable[Any] = self.conn.execution_options(yield_per=1000).execute(
            select(_RECORDS)
            .where(_RECORDS.c.seq > self.start_seq, _RECORDS.c.seq <= head["seq"])
            .order_by(_RECORDS.c.seq)
        )
        report = verify(
            (cast("Mapping[str, Any]", row._mapping) for row in rows),
            start_seq=self.start_seq,
            start_hash=self.start_hash,
            head_seq=head["seq"],
            head_hash=head["hash"],
            hasher=self.hasher(),
            pins=self.pins,
        )
        if report.ok:
            beyond = self.conn.execute(
                select(func.min(_RECORDS.c.seq)).where(_RECORDS.c.seq > head["seq"])
            ).scalar()
            moved = self.conn.execute(select(_HEAD.c.seq).where(_HEAD.c.id == 1)).scalar()
            if beyond is not None and moved == head["seq"]:
                return VerifyReport(
                    False, report.checked, beyond, f"record {beyond} is past the head"
                )
        if self.unverifiable:
            self.warnings.append(
                f"{self.unverifiable} records are keyed with a key other than the configured "
                "one (before a key rotation): their links were checked, their MACs not"
            )
        return report


def verify_trail(
    db: Database,
    *,
    key: ChainKey | None,
    retention_days: int,
    checkpoints: Sequence[Checkpoint] = (),
    now_us: int | None = None,
) -> VerifyReport:
    """Verify the audit trail in ``db`` (see the module docstring for what is checked)."""
    now_us = now_us if now_us is not None else time.time_ns() // 1000
    with db.engine.connect() as conn:
        trail = _Trail(conn, key, retention_days, checkpoints, now_us)
        report: VerifyReport | None = None
        try:
            trail.check_purges()
            trail.check_key_anchors()
            trail.collect_pins()
        except _Broken as broken:
            report = VerifyReport(False, 0, broken.seq, broken.problem)
        if report is None:
            report = trail.walk()
    ours = [a for a in trail.anchors if key is not None and a["key_id"] == key.key_id]
    return dataclasses.replace(
        report,
        keyed=bool(ours),
        key_id=key.key_id if key is not None else None,
        keyed_from_seq=ours[0]["after_seq"] if ours else None,
        legacy_records=trail.legacy,
        start_seq=trail.start_seq,
        head_seq=trail.head["seq"],
        head_hash=trail.head["hash"],
        checkpoints_checked=len(checkpoints) if report.ok else 0,
        warnings=trail.warnings,
    )
