"""Killing the process under load loses no acknowledged audit record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from luodi.config.storage import StorageSettings
from luodi.security.audit import AuditFilter, AuditLog
from luodi.storage import Database

CHILD = Path(__file__).with_name("_audit_writer_child.py")
ROOT = Path(__file__).resolve().parents[2]


def test_sigkill_under_load_loses_no_acknowledged_record(
    storage: StorageSettings, tmp_path: Path
) -> None:
    url = storage.database_url
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    stderr_path = tmp_path / "child.err"
    stderr = open(stderr_path, "w")  # noqa: SIM115  closed below, after the child is gone
    child = subprocess.Popen(
        [sys.executable, str(CHILD), url],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert child.stdout is not None
    acked: set[tuple[str, int]] = set()
    try:
        for line in child.stdout:
            if line.startswith("ACK"):
                _, user, i = line.split()
                acked.add((user, int(i)))
                if len(acked) >= 400:
                    break
        child.send_signal(signal.SIGKILL)
        for line in child.stdout:  # acks printed before the kill landed
            if line.startswith("ACK") and line.endswith("\n"):
                _, user, i = line.split()
                acked.add((user, int(i)))
    finally:
        child.kill()
        child.wait()
        stderr.close()
    assert child.returncode == -signal.SIGKILL, stderr_path.read_text()[-2000:]

    db = Database(storage)
    try:
        log = AuditLog(db, retention_days=180)
        report = log.verify()
        assert report.ok, report
        stored = {(r["user"], r["prompt_tokens"]) for r in log.iter_records(AuditFilter())}
    finally:
        db.dispose()
    assert acked <= stored
    assert len(stored) >= len(acked) >= 400
