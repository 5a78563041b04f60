"""``luodi keys|users|roles|audit|model``: the security CLI end to end on a SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from luodi.cli import audit as audit_cli
from luodi.cli import keys as keys_cli
from luodi.cli import model as model_cli
from luodi.cli import roles as roles_cli
from luodi.cli import users as users_cli
from luodi.config.security import SecuritySettings
from luodi.config.storage import StorageSettings
from luodi.errors import AuthenticationError
from luodi.security import Gateway, operator
from luodi.storage import Database

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file pointing storage at a temp SQLite file."""
    from luodi.config import Settings

    db_url = f"sqlite:///{tmp_path / 'cli.db'}"
    path = tmp_path / "luodi.yaml"
    if "storage" in Settings.model_fields:
        path.write_text(f"storage:\n  database_url: {db_url}\n")
    else:  # until the lead wires the sections into Settings
        path.write_text("{}\n")
        monkeypatch.setattr(
            operator,
            "load_sections",
            lambda _config: (SecuritySettings(), StorageSettings(database_url=db_url)),
        )
    return path


def invoke(app: object, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args])  # type: ignore[arg-type]
    return result.exit_code, result.output


def db_for(config: Path) -> Database:
    return Database(operator.load_sections(config)[1])


def test_key_lifecycle_from_the_cli(config: Path) -> None:
    cfg = ("--config", str(config))
    assert invoke(users_cli.app, "create", "zhang", "--role", "analyst", *cfg)[0] == 0
    code, out = invoke(keys_cli.app, "create", "--user", "zhang", "--model", "qwen3", *cfg)
    assert code == 0, out
    key_id = out.split("key id: ")[1].split()[0]
    secret = out.split("secret: ")[1].split()[0]
    code, out = invoke(keys_cli.app, "list", *cfg)
    assert key_id in out and secret not in out
    assert invoke(keys_cli.app, "revoke", key_id, *cfg)[0] == 0

    async def check() -> None:
        security, storage = operator.load_sections(config)
        gw = await Gateway.create(security, storage)
        try:
            with pytest.raises(AuthenticationError, match="revoked"):
                await gw.authenticate(f"Bearer {secret}", "127.0.0.1")
        finally:
            await gw.close()

    asyncio.run(check())


def test_custom_role_from_the_cli(config: Path) -> None:
    cfg = ("--config", str(config))
    code, out = invoke(roles_cli.app, "create", "hr", "-p", "kb:hr-docs:read", *cfg)
    assert code == 0 and json.loads(out)["permissions"] == ["kb:hr-docs:read"]
    code, out = invoke(roles_cli.app, "create", "bad", "-p", "kb:hr:delete", *cfg)
    assert code == 1 and "invalid permission" in out
    code, out = invoke(roles_cli.app, "delete", "auditor", *cfg)
    assert code == 1 and "built-in" in out


def test_audit_verify_names_the_first_edited_record(config: Path) -> None:
    cfg = ("--config", str(config))
    for name in ("a", "b", "c", "d"):
        invoke(users_cli.app, "create", name, *cfg)  # each is an audited admin action
    code, out = invoke(audit_cli.app, "verify", *cfg)
    assert code == 0 and "OK" in out
    db = db_for(config)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET user = 'mallory' WHERE seq = 3"))
    db.dispose()
    code, out = invoke(audit_cli.app, "verify", *cfg)
    assert code == 1
    assert "BROKEN at record 3" in out


def test_audit_export_and_query(config: Path, tmp_path: Path) -> None:
    cfg = ("--config", str(config))
    invoke(users_cli.app, "create", "qian", *cfg)
    for fmt in ("jsonl", "csv"):
        out_file = tmp_path / f"audit.{fmt}"
        code, out = invoke(audit_cli.app, "export", "--format", fmt, "--out", str(out_file), *cfg)
        assert code == 0, out
        assert "users.create" in out_file.read_text()
    code, out = invoke(
        audit_cli.app, "query", "--user", f"cli:{operator.operator_principal().user[4:]}", *cfg
    )
    assert code == 0 and "users.create" in out


def test_audit_purge_refuses_young_records(config: Path) -> None:
    code, out = invoke(audit_cli.app, "purge", "--older-than-days", "30", "--config", str(config))
    assert code == 1 and "retention" in out


def test_model_encrypt_decrypt_and_wrong_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_KEY", os.urandom(32).hex())
    plain, enc, dec = tmp_path / "m.gguf", tmp_path / "m.enc", tmp_path / "m.out"
    plain.write_bytes(b"GGUF" + os.urandom(10_000))
    assert invoke(model_cli.app, "encrypt", str(plain), str(enc), "--key-env", "MODEL_KEY")[0] == 0
    assert invoke(model_cli.app, "decrypt", str(enc), str(dec), "--key-env", "MODEL_KEY")[0] == 0
    assert dec.read_bytes() == plain.read_bytes()
    key_file = tmp_path / "k"
    assert invoke(model_cli.app, "keygen", "--out", str(key_file))[0] == 0
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    code, out = invoke(
        model_cli.app, "decrypt", str(enc), str(tmp_path / "x"), "--key-file", str(key_file)
    )
    assert code == 1 and "wrong model key" in out
