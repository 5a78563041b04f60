"""Attacks on the audit trail with raw SQL, as someone who can write the database.

Each test is one way of hiding or rewriting records that the plain hash chain did
not catch; the attacker has the database, not the audit key. Runs on a real SQLite
file and on PostgreSQL when it is available.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from luodi.config.security import AuditSettings, ModelKeySettings, SecuritySettings
from luodi.config.storage import StorageSettings
from luodi.errors import ConfigError
from luodi.security import AuditEvent, Gateway
from luodi.security.audit import (
    GENESIS_HASH,
    VerifyReport,
    export_checkpoint,
    read_checkpoints,
    record_hash,
)

DAY_US = 86_400 * 1_000_000


def key_file(tmp_path: Path, name: str = "audit.key") -> Path:
    path = tmp_path / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w") as handle:
        handle.write(os.urandom(32).hex() + "\n")
    return path


def keyed(key: Path, **audit: Any) -> SecuritySettings:
    return SecuritySettings(audit=AuditSettings(key=ModelKeySettings(file=key), **audit))


@pytest.fixture
async def gw(storage: StorageSettings, tmp_path: Path) -> AsyncIterator[Gateway]:
    """A Gateway whose audit chain is keyed, on each backend."""
    gateway = await Gateway.create(keyed(key_file(tmp_path)), storage)
    try:
        yield gateway
    finally:
        await gateway.close()


async def write_events(gw: Gateway, n: int, **fields: Any) -> None:
    for i in range(n):
        await gw.audit(AuditEvent(endpoint="/v1/chat/completions", prompt_tokens=i, **fields))


def sql(gw: Gateway, statement: str, **params: object) -> None:
    with gw.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def rows(gw: Gateway) -> list[dict[str, Any]]:
    with gw.db.engine.connect() as conn:
        result = conn.execute(text("SELECT * FROM audit_records ORDER BY seq"))
        return [dict(r._mapping) for r in result]


def record(gw: Gateway, seq: int) -> dict[str, Any]:
    return next(r for r in rows(gw) if r["seq"] == seq)


def rechain_unkeyed(gw: Gateway, from_seq: int, edit: dict[str, Any]) -> None:
    """Edit one record and recompute every later hash the way the plain chain does."""
    prev = GENESIS_HASH
    for row in rows(gw):
        if row["seq"] < from_seq:
            prev = row["hash"]
            continue
        if row["seq"] == from_seq:
            row.update(edit)
        row["prev_hash"] = prev
        row["hash"] = prev = record_hash(row)
        rewrite(gw, row)
    last = rows(gw)[-1]
    sql(gw, "UPDATE audit_chain_head SET seq = :s, hash = :h", s=last["seq"], h=last["hash"])


def rewrite(gw: Gateway, row: dict[str, Any]) -> None:
    """Store a re-chained row: its prompt_tokens, prev_hash and hash, as an attacker would."""
    sql(
        gw,
        "UPDATE audit_records SET prompt_tokens = :p, prev_hash = :ph, hash = :h WHERE seq = :s",
        p=row["prompt_tokens"],
        ph=row["prev_hash"],
        h=row["hash"],
        s=row["seq"],
    )


def broken(report: VerifyReport, *words: str) -> bool:
    return not report.ok and all(w in (report.problem or "") for w in words)


async def test_keyed_chain_verifies_and_reports_its_key(gw: Gateway) -> None:
    await write_events(gw, 12)
    report = gw.audit_log.verify()
    assert report.ok, report.problem
    assert (report.checked, report.keyed, report.keyed_from_seq) == (12, True, 0)
    assert report.key_id == gw.audit_log.key.key_id  # type: ignore[union-attr]
    assert (report.head_seq, report.legacy_records, report.warnings) == (12, 0, [])


async def test_deleting_newest_records_and_rewinding_the_head_is_detected(gw: Gateway) -> None:
    await write_events(gw, 10)
    seventh = record(gw, 7)
    sql(gw, "DELETE FROM audit_records WHERE seq > 7")
    sql(gw, "UPDATE audit_chain_head SET seq = 7, hash = :h", h=seventh["hash"])
    report = gw.audit_log.verify()
    assert broken(report, "head", "invalid MAC")
    assert report.first_bad_seq == 7


async def test_rewinding_to_a_saved_head_row_is_caught_by_a_checkpoint(gw: Gateway) -> None:
    await write_events(gw, 7)
    with gw.db.engine.connect() as conn:
        saved = dict(conn.execute(text("SELECT * FROM audit_chain_head")).one()._mapping)
    await write_events(gw, 3)
    _report, checkpoint = gw.audit_log.checkpoint()
    assert checkpoint is not None and checkpoint.seq == 10
    sql(gw, "DELETE FROM audit_records WHERE seq > 7")
    sql(
        gw,
        "UPDATE audit_chain_head SET seq = :s, hash = :h, mac = :m",
        s=saved["seq"],
        h=saved["hash"],
        m=saved["mac"],
    )
    assert gw.audit_log.verify().ok  # a genuine old state: nothing inside the database says
    report = gw.audit_log.verify([checkpoint])
    assert broken(report, "8..10", "missing")
    assert report.first_bad_seq == 8


@pytest.mark.parametrize("reset_key", [False, True])
async def test_wiping_every_record_and_resetting_the_head_is_detected(
    gw: Gateway, reset_key: bool
) -> None:
    await write_events(gw, 10)
    _report, checkpoint = gw.audit_log.checkpoint()
    assert checkpoint is not None
    sql(gw, "DELETE FROM audit_records")
    if reset_key:  # as after a fresh install: no key, no anchors
        sql(gw, "DELETE FROM audit_key_anchors")
        sql(
            gw,
            "UPDATE audit_chain_head SET seq = 0, hash = :g, key_id = NULL, mac = NULL",
            g=GENESIS_HASH,
        )
        assert not gw.audit_log.verify().keyed  # looks fresh: only the checkpoint knows
        report = gw.audit_log.verify([checkpoint])
        assert broken(report, "1..10", "missing")
        assert report.first_bad_seq == 1
    else:
        sql(gw, "UPDATE audit_chain_head SET seq = 0, hash = :g", g=GENESIS_HASH)
        assert broken(gw.audit_log.verify(), "head", "invalid MAC")


async def test_fake_purge_anchor_hiding_recent_records_is_detected(gw: Gateway) -> None:
    await write_events(gw, 10)
    now = time.time_ns() // 1000
    seventh = record(gw, 7)
    sql(gw, "DELETE FROM audit_records WHERE seq <= 7")
    sql(
        gw,
        "INSERT INTO audit_purges (purged_us, cutoff_us, through_seq, through_hash, deleted, "
        "principal) VALUES (:p, :c, 7, :h, 7, 'root')",
        p=now,
        c=now - 181 * DAY_US,  # plausible dates: only the missing MAC gives it away
        h=seventh["hash"],
    )
    assert broken(gw.audit_log.verify(), "purge anchor", "no MAC")
    sql(gw, "UPDATE audit_purges SET mac = :m", m="f" * 64)
    assert broken(gw.audit_log.verify(), "purge anchor", "invalid MAC")


async def test_purge_anchor_inside_the_retention_floor_is_forged_even_unkeyed(
    gateway: Gateway,
) -> None:
    await write_events(gateway, 10)
    now = time.time_ns() // 1000
    seventh = record(gateway, 7)
    sql(gateway, "DELETE FROM audit_records WHERE seq <= 7")
    sql(
        gateway,
        "INSERT INTO audit_purges (purged_us, cutoff_us, through_seq, through_hash, deleted) "
        "VALUES (:p, :p, 7, :h, 7)",
        p=now,
        h=seventh["hash"],
    )
    assert broken(gateway.audit_log.verify(), "purge anchor", "retention")


async def test_a_real_purge_of_a_keyed_chain_still_verifies(gw: Gateway) -> None:
    now = time.time_ns() // 1000
    for i in range(4):
        await gw.audit(AuditEvent(endpoint="/v1/x", time_us=now - 200 * DAY_US + i))
    await write_events(gw, 3)
    result = gw.audit_log.purge(now - 181 * DAY_US, principal="root", now_us=now)
    assert result.through_seq == 4
    report = gw.audit_log.verify()
    assert report.ok and report.checked == 3 and report.start_seq == 4


@pytest.mark.parametrize("from_seq", [1, 5, 10])
async def test_rechaining_from_any_record_is_detected(gw: Gateway, from_seq: int) -> None:
    await write_events(gw, 10)
    rechain_unkeyed(gw, from_seq, {"prompt_tokens": 999})
    report = gw.audit_log.verify()
    assert not report.ok
    assert report.first_bad_seq in (from_seq, 10)  # the record, or the head's MAC


async def test_stripping_the_key_and_rechaining_everything_is_caught_by_a_checkpoint(
    gw: Gateway,
) -> None:
    await write_events(gw, 10)
    _report, checkpoint = gw.audit_log.checkpoint()
    assert checkpoint is not None
    sql(gw, "DELETE FROM audit_key_anchors")
    sql(gw, "UPDATE audit_chain_head SET key_id = NULL, mac = NULL")
    rechain_unkeyed(gw, 1, {"prompt_tokens": 999})  # a whole plain chain, as if never keyed
    assert gw.audit_log.verify().ok
    report = gw.audit_log.verify([checkpoint])
    assert broken(report, "record 10", "checkpoint")


async def test_unkeyed_chain_continues_keyed_from_an_anchor_after_upgrade(
    storage: StorageSettings, tmp_path: Path
) -> None:
    old = await Gateway.create(SecuritySettings(), storage)
    await write_events(old, 5)
    await old.close()
    gw = await Gateway.create(keyed(key_file(tmp_path)), storage)
    try:
        before = gw.audit_log.verify()
        assert before.ok and not before.keyed and before.warnings
        await write_events(gw, 3)
        report = gw.audit_log.verify()
        assert report.ok, report.problem
        assert (report.keyed, report.keyed_from_seq, report.legacy_records) == (True, 5, 5)
        assert report.checked == 8
        # The legacy part is pinned by the anchor: re-chaining it breaks record 5.
        rechain_unkeyed_range(gw, 2, 5)
        assert broken(gw.audit_log.verify(), "record 5", "key anchor")
    finally:
        await gw.close()


def rechain_unkeyed_range(gw: Gateway, from_seq: int, to_seq: int) -> None:
    prev = GENESIS_HASH
    for row in rows(gw):
        if row["seq"] > to_seq:
            break
        if row["seq"] >= from_seq:
            if row["seq"] == from_seq:
                row["prompt_tokens"] = 999
            row["prev_hash"] = prev
            row["hash"] = record_hash(row)
            rewrite(gw, row)
        prev = row["hash"]


async def test_keyed_chain_refuses_to_start_without_its_key(
    sqlite_storage: StorageSettings, tmp_path: Path
) -> None:
    gw = await Gateway.create(keyed(key_file(tmp_path)), sqlite_storage)
    await write_events(gw, 1)
    await gw.close()
    with pytest.raises(ConfigError, match=r"keyed .*security\.audit\.key"):
        await Gateway.create(SecuritySettings(), sqlite_storage)


async def test_another_key_cannot_verify_the_chain(
    sqlite_storage: StorageSettings, tmp_path: Path
) -> None:
    gw = await Gateway.create(keyed(key_file(tmp_path)), sqlite_storage)
    await write_events(gw, 3)
    await gw.close()
    other = await Gateway.create(keyed(key_file(tmp_path, "other.key")), sqlite_storage)
    try:
        assert broken(other.audit_log.verify(), "not the configured key")
        await write_events(other, 2)  # rotation: a new keyed segment from here
        report = other.audit_log.verify()
        assert report.ok and report.keyed_from_seq == 3 and report.warnings
    finally:
        await other.close()


async def test_checkpoint_file_round_trip_and_forged_checkpoint(
    gw: Gateway, tmp_path: Path
) -> None:
    await write_events(gw, 4)
    _report, checkpoint = gw.audit_log.checkpoint()
    assert checkpoint is not None
    path = tmp_path / "checkpoints.jsonl"
    export_checkpoint(checkpoint, file=path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    (loaded,) = read_checkpoints(path)
    assert loaded == checkpoint
    await write_events(gw, 2)
    report = gw.audit_log.verify(read_checkpoints(path))
    assert report.ok and report.checkpoints_checked == 1
    forged = type(checkpoint)(
        checkpoint.seq, "e" * 64, checkpoint.ts_us, checkpoint.key_id, checkpoint.mac
    )
    assert broken(gw.audit_log.verify([forged]), "invalid MAC")


async def test_periodic_checkpoints_are_exported_and_verify(
    sqlite_storage: StorageSettings, tmp_path: Path
) -> None:
    path = tmp_path / "worm" / "checkpoints.jsonl"
    path.parent.mkdir()
    security = keyed(key_file(tmp_path), checkpoint_file=path, checkpoint_interval_s=3600)
    gw = await Gateway.create(security, sqlite_storage)
    await write_events(gw, 5)
    await gw.close()  # flushes, then exports the final head
    checkpoints = read_checkpoints(path)
    assert checkpoints[-1].seq == 5
    gw = await Gateway.create(keyed(security.audit.key.file), sqlite_storage)  # type: ignore[arg-type]
    try:
        assert gw.audit_log.verify(checkpoints).ok
        sql(gw, "DELETE FROM audit_records WHERE seq = 5")
        sql(gw, "UPDATE audit_chain_head SET seq = 4, hash = :h", h=record(gw, 4)["hash"])
        assert not gw.audit_log.verify(checkpoints).ok
    finally:
        await gw.close()
