"""``luodi audit verify|checkpoint`` with a keyed chain, end to end on a SQLite file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from luodi.cli import audit as audit_cli
from luodi.cli import users as users_cli
from luodi.security import operator
from luodi.storage import Database

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config with its own SQLite file and an audit key file (mode 600)."""
    db_url = f"sqlite:///{tmp_path / 'cli.db'}"
    # The environment outranks the file, and the test session sets a shared database.
    monkeypatch.setenv("LUODI_STORAGE__DATABASE_URL", db_url)
    key = tmp_path / "audit.key"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w") as handle:
        handle.write(os.urandom(32).hex())
    path = tmp_path / "luodi.yaml"
    path.write_text(
        f"storage:\n  database_url: {db_url}\nsecurity:\n  audit:\n    key:\n      file: {key}\n"
    )
    return path


def invoke(app: object, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args])  # type: ignore[arg-type]
    return result.exit_code, result.output


def sql(config: Path, statement: str, **params: object) -> None:
    db = Database(operator.load_sections(config)[1])
    try:
        with db.engine.begin() as conn:
            conn.execute(text(statement), params)
    finally:
        db.dispose()


def test_verify_json_keeps_the_original_fields_and_adds_the_key(config: Path) -> None:
    cfg = ("--config", str(config))
    invoke(users_cli.app, "create", "a", *cfg)
    code, out = invoke(audit_cli.app, "verify", "--json", *cfg)
    assert code == 0, out
    report = json.loads(out)
    assert {"ok", "checked", "first_bad_seq", "problem"} <= set(report)
    assert report["ok"] and report["keyed"] and report["keyed_from_seq"] == 0


def test_checkpoint_then_truncation_is_caught_by_verify(config: Path, tmp_path: Path) -> None:
    cfg = ("--config", str(config))
    for name in ("a", "b", "c"):
        invoke(users_cli.app, "create", name, *cfg)  # records 1..3
    # The attacker keeps a copy of the head row as it is now.
    sql(config, "CREATE TABLE saved AS SELECT * FROM audit_chain_head")
    invoke(users_cli.app, "create", "d", *cfg)  # record 4
    store = tmp_path / "elsewhere" / "checkpoints.jsonl"
    store.parent.mkdir()
    code, out = invoke(audit_cli.app, "checkpoint", "--out", str(store), *cfg)
    assert code == 0, out
    line = json.loads(out.strip().splitlines()[-1])
    assert line["seq"] == 4 and line["mac"] and json.loads(store.read_text()) == line
    code, out = invoke(audit_cli.app, "verify", "--checkpoint", str(store), *cfg)
    assert code == 0 and "1 checkpoints matched" in out
    # Later, records 4.. are deleted and the saved head row put back.
    sql(config, "DELETE FROM audit_records WHERE seq > 3")
    sql(config, "DELETE FROM audit_chain_head")
    sql(config, "INSERT INTO audit_chain_head SELECT * FROM saved")
    code, out = invoke(audit_cli.app, "verify", *cfg)
    assert code == 0  # a valid older state: the database alone cannot tell
    code, out = invoke(audit_cli.app, "verify", "--checkpoint", str(store), *cfg)
    assert code == 1
    assert "BROKEN at record 4" in out and "checkpoint" in out


def test_checkpoint_of_a_broken_chain_is_refused(config: Path) -> None:
    cfg = ("--config", str(config))
    invoke(users_cli.app, "create", "a", *cfg)
    invoke(users_cli.app, "create", "b", *cfg)
    sql(config, "UPDATE audit_records SET user = 'mallory' WHERE seq = 1")
    code, out = invoke(audit_cli.app, "checkpoint", *cfg)
    assert code == 1 and "no checkpoint" in out


def test_verify_rejects_a_file_that_is_not_a_checkpoint(config: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "x.jsonl"
    bogus.write_text('{"seq": 1}\n')
    code, out = invoke(audit_cli.app, "verify", "--checkpoint", str(bogus), "--config", str(config))
    assert code == 2 and "not a luodi audit checkpoint" in out
