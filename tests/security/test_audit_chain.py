"""The audit log: hash chain tampering, retention purge, export, content policy."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from sqlalchemy import text

from luodi.config.security import AuditSettings, SecuritySettings
from luodi.config.storage import StorageSettings
from luodi.errors import InvalidRequestError, PermissionDeniedError
from luodi.security import AuditEvent, AuditFilter, Gateway
from luodi.security.audit import Decision, sha256_text

from .conftest import principal_for

DAY_US = 86_400 * 1_000_000


async def write_events(gw: Gateway, n: int, **fields: object) -> None:
    for i in range(n):
        await gw.audit(AuditEvent(endpoint="/v1/chat/completions", prompt_tokens=i, **fields))  # type: ignore[arg-type]


def sql(gw: Gateway, statement: str, **params: object) -> None:
    with gw.db.engine.begin() as conn:
        conn.execute(text(statement), params)


async def test_untouched_chain_verifies(gateway: Gateway) -> None:
    await write_events(gateway, 20)
    report = gateway.audit_log.verify()
    assert report.ok and report.checked == 20


TAMPERING = {
    "edited": (
        "UPDATE audit_records SET prompt_tokens = 999 WHERE seq = 7",
        7,
        "edited",
    ),
    "deleted": ("DELETE FROM audit_records WHERE seq = 7", 7, "missing"),
    "deleted-last": ("DELETE FROM audit_records WHERE seq = 10", 10, "missing"),
    "reordered": (
        # Swap records 4 and 6 through a free number (the primary key is unique).
        "UPDATE audit_records SET seq = 1000 WHERE seq = 4;"
        "UPDATE audit_records SET seq = 4 WHERE seq = 6;"
        "UPDATE audit_records SET seq = 6 WHERE seq = 1000",
        4,
        "",
    ),
    "relinked": (
        "UPDATE audit_records SET prev_hash = :fake WHERE seq = 5",
        5,
        "does not link",
    ),
}


@pytest.mark.parametrize("kind", sorted(TAMPERING))
async def test_chain_detects_tampering_and_names_first_bad_record(
    gateway: Gateway, kind: str
) -> None:
    await write_events(gateway, 10)
    statement, first_bad, words = TAMPERING[kind]
    for part in statement.split(";"):
        sql(gateway, part, **({"fake": "f" * 64} if ":fake" in part else {}))
    report = gateway.audit_log.verify()
    assert not report.ok
    assert report.first_bad_seq == first_bad
    assert words in (report.problem or "")


async def test_purge_refuses_records_younger_than_retention(gateway: Gateway) -> None:
    await write_events(gateway, 3)
    now = time.time_ns() // 1000
    with pytest.raises(InvalidRequestError, match="180-day retention"):
        gateway.audit_log.purge(now, now_us=now)
    with pytest.raises(InvalidRequestError, match="retention"):
        gateway.audit_log.purge(now - 179 * DAY_US, now_us=now)
    assert gateway.audit_log.verify().checked == 3


async def test_purge_of_old_records_keeps_the_rest_verifiable(gateway: Gateway) -> None:
    now = time.time_ns() // 1000
    old = now - 200 * DAY_US
    for i in range(5):
        await gateway.audit(AuditEvent(endpoint="/v1/x", time_us=old + i))
    await write_events(gateway, 3)
    result = gateway.audit_log.purge(now - 181 * DAY_US, principal="root", now_us=now)
    assert (result.deleted, result.through_seq) == (5, 5)
    report = gateway.audit_log.verify()
    assert report.ok and report.checked == 3
    await write_events(gateway, 2)
    assert gateway.audit_log.verify().checked == 5


async def test_longer_retention_is_enforced(sqlite_storage: StorageSettings) -> None:
    security = SecuritySettings(audit=AuditSettings(retention_days=365))
    gw = await Gateway.create(security, sqlite_storage)
    try:
        now = time.time_ns() // 1000
        with pytest.raises(InvalidRequestError, match="365-day"):
            gw.audit_log.purge(now - 200 * DAY_US, now_us=now)
    finally:
        await gw.close()


def test_retention_below_180_days_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="180"):
        AuditSettings(retention_days=90)


async def test_export_filters_by_time_user_and_tenant(gateway: Gateway) -> None:
    base = 1_700_000_000_000_000
    rows = [("ann", "hr", 0), ("ann", "hr", 10), ("bo", "risk", 20), ("bo", "hr", 30)]
    for user, tenant, offset in rows:
        await gateway.audit(
            AuditEvent(
                endpoint="/v1/x", user=user, tenant=tenant, time_us=base + offset * 1_000_000
            )
        )
    log = gateway.audit_log
    cases = [
        (AuditFilter(user="ann"), 2),
        (AuditFilter(tenant="hr"), 3),
        (AuditFilter(user="bo", tenant="hr"), 1),
        (AuditFilter(since_us=base + 10_000_000, until_us=base + 30_000_000), 2),
    ]
    for flt, expected in cases:
        out = io.StringIO()
        assert log.export(flt, out, fmt="jsonl") == expected
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        assert len(lines) == expected and all("hash" in r and "time" in r for r in lines)
        out = io.StringIO()
        log.export(flt, out, fmt="csv")
        assert len(list(csv.DictReader(io.StringIO(out.getvalue())))) == expected


@pytest.mark.parametrize("store_content", [False, True])
async def test_content_is_stored_only_when_configured(
    sqlite_storage: StorageSettings, store_content: bool
) -> None:
    security = SecuritySettings(audit=AuditSettings(store_content=store_content))
    gw = await Gateway.create(security, sqlite_storage)
    try:
        principal = await principal_for(gw, "kim", ["analyst"])
        await gw.audit(
            AuditEvent.for_request(
                principal,
                endpoint="/v1/chat/completions",
                prompt="身份证 110101199003074518",
                response="ok",
                pii_findings={"CN_ID_CARD": 1},
                source_ip="10.0.0.8",
                model="qwen3",
            )
        )
        (record,) = gw.audit_log.query(AuditFilter(user="kim"))
    finally:
        await gw.close()
    assert record["prompt_sha256"] == sha256_text("身份证 110101199003074518")
    assert json.loads(record["pii_json"]) == {"CN_ID_CARD": 1}
    assert (record["prompt_text"] is not None) is store_content
    assert (record["tenant"], record["key_id"], record["source_ip"]) == (
        "default",
        principal.key_id,
        "10.0.0.8",
    )


async def test_admin_actions_are_audited_including_refusals(sqlite_gateway: Gateway) -> None:
    admin = await principal_for(sqlite_gateway, "root", ["admin"])
    auditor = await principal_for(sqlite_gateway, "aud", ["auditor"])
    await sqlite_gateway.admin_action(
        admin,
        action="roles.create",
        permission="users:manage",
        detail={"role": "x"},
        run=lambda: sqlite_gateway.directory.create_role("x", ["kb:x:read"]),
    )
    with pytest.raises(PermissionDeniedError):
        await sqlite_gateway.admin_action(
            auditor,
            action="keys.create",
            permission="keys:manage",
            detail={"user": "aud"},
            run=lambda: sqlite_gateway.keys.create("aud"),
        )
    records = sqlite_gateway.audit_log.query(AuditFilter())
    assert [(r["endpoint"], r["decision"], r["user"]) for r in records] == [
        ("roles.create", Decision.ALLOWED, "root"),
        ("keys.create", Decision.DENIED, "aud"),
    ]
    assert "keys:manage" in records[1]["reason"]


async def test_concurrent_writers_share_one_chain(gateway: Gateway) -> None:
    import asyncio

    await asyncio.gather(*(write_events(gateway, 10) for _ in range(16)))
    report = gateway.audit_log.verify()
    assert report.ok and report.checked == 160
