"""Audit key sources and checkpoint export: file, command, failures."""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path

import pytest

from luodi.config.security import AuditSettings, ModelKeySettings
from luodi.errors import ConfigError, InvalidRequestError, ServiceUnavailableError
from luodi.security.audit import (
    ChainKey,
    Checkpoint,
    CheckpointExporter,
    export_checkpoint,
    make_checkpoint,
    read_checkpoints,
)

KEY = bytes(range(32))


def test_the_audit_key_comes_from_the_model_key_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIT_KEY", KEY.hex())
    key_file = tmp_path / "k"
    key_file.write_text(KEY.hex())
    key_file.chmod(0o600)
    script = f"print({KEY.hex()!r})"
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}"
    sources = [
        ModelKeySettings(env="AUDIT_KEY"),
        ModelKeySettings(file=key_file),
        ModelKeySettings(kms_command=command),
    ]
    keys = [ChainKey.from_settings(AuditSettings(key=s)) for s in sources]
    assert len({k.key_id for k in keys if k is not None}) == 1
    assert ChainKey.from_settings(AuditSettings()) is None


def test_an_unusable_audit_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"security\.audit\.key: audit key variable"):
        ChainKey.from_settings(AuditSettings(key=ModelKeySettings(env="NO_SUCH_KEY")))


def test_subkeys_differ_from_the_master_and_by_use() -> None:
    key = ChainKey(KEY)
    fields = {"seq": 1, "hash": "a" * 64}
    assert key.mac("head", fields) != key.mac("checkpoint", fields)
    assert key.check("head", fields, key.mac("head", fields))
    assert not ChainKey(bytes(32)).check("head", fields, key.mac("head", fields))
    assert KEY.hex() not in key.key_id


def test_checkpoint_goes_to_a_command_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "syslog.txt"
    script = f"import sys; open({str(out)!r}, 'a').write(sys.stdin.read())"
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}"
    checkpoint = make_checkpoint(7, "b" * 64, ChainKey(KEY), now_us=1_800_000_000_000_000)
    export_checkpoint(checkpoint, command=command)
    assert read_checkpoints(out) == [checkpoint]


def test_a_failing_checkpoint_command_is_an_error() -> None:
    checkpoint = make_checkpoint(1, "c" * 64, None)
    with pytest.raises(ServiceUnavailableError, match="exited 3"):
        export_checkpoint(checkpoint, command=f"{shlex.quote(sys.executable)} -c 'exit(3)'")


async def test_exporter_logs_failures_and_skips_an_unmoved_head(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    heads = [Checkpoint(1, "d" * 64, 1), Checkpoint(1, "d" * 64, 2), Checkpoint(2, "e" * 64, 3)]
    path = tmp_path / "cp.jsonl"
    exporter = CheckpointExporter(lambda: heads.pop(0), file=path, command=None, interval_s=3600)
    assert await exporter.export_now() is not None
    assert await exporter.export_now() is None  # same seq: nothing new to pin
    assert await exporter.export_now() is not None
    assert [c.seq for c in read_checkpoints(path)] == [1, 2]
    broken = CheckpointExporter(
        lambda: Checkpoint(3, "f" * 64, 4),
        file=tmp_path / "missing-dir" / "cp.jsonl",
        command=None,
        interval_s=3600,
    )
    with caplog.at_level(logging.ERROR):
        await broken.close()
    assert "final audit checkpoint failed" in caplog.text


def test_read_checkpoints_skips_comments_and_rejects_garbage(tmp_path: Path) -> None:
    good = make_checkpoint(3, "a" * 64, None, now_us=5)
    path = tmp_path / "c"
    path.write_text(f"# exported by cron\n\n{good.to_json()}\n")
    assert read_checkpoints(path) == [good]
    path.write_text("not json\n")
    with pytest.raises(InvalidRequestError, match="not JSON"):
        read_checkpoints(path)


@pytest.mark.parametrize(
    "fields",
    [{"seq": -1}, {"ts_us": 10**20}, {"mac": 5}, {"key_id": ["x"]}, {"seq": "x"}, {"hash": None}],
)
def test_malformed_checkpoints_are_refused(fields: dict[str, object]) -> None:
    body = {**json.loads(make_checkpoint(1, "a" * 64, ChainKey(KEY)).to_json()), **fields}
    if fields.get("hash", "") is None:
        del body["hash"]
    with pytest.raises(InvalidRequestError, match="malformed audit checkpoint"):
        Checkpoint.from_json(body)
