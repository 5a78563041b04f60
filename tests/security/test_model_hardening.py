"""Model keys and loading: key file modes, encrypted-only models, non-dumpable process."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from luodi.config.security import ModelKeySettings, SecuritySettings
from luodi.errors import ModelLoadError
from luodi.security.crypto import KeySource, encrypt_file, model_opener

KEY = bytes(range(32))


def write_key(path: Path, mode: int) -> Path:
    path.write_text(KEY.hex())
    path.chmod(mode)
    return path


@pytest.fixture
def models(tmp_path: Path) -> tuple[Path, Path]:
    plain = tmp_path / "m.gguf"
    plain.write_bytes(b"GGUF" + os.urandom(5000))
    sealed = tmp_path / "m.gguf.enc"
    encrypt_file(plain, sealed, KEY, chunk_size=4096)
    return plain, sealed


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_readable_key_file_loads_with_a_warning(
    tmp_path: Path, mode: int, caplog: pytest.LogCaptureFixture
) -> None:
    key = write_key(tmp_path / "k", mode)
    with caplog.at_level(logging.WARNING):
        assert KeySource(file=key).load() == KEY
    assert f"{mode:#o}" in caplog.text and "chmod 600" in caplog.text


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_strict_mode_refuses_a_readable_key_file(tmp_path: Path, mode: int) -> None:
    key = write_key(tmp_path / "k", mode)
    with pytest.raises(ModelLoadError, match="require_strict_key_permissions"):
        KeySource(file=key, strict_permissions=True).load()


def test_private_key_file_loads_quietly_in_strict_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = write_key(tmp_path / "k", 0o600)
    with caplog.at_level(logging.WARNING):
        assert KeySource(file=key, strict_permissions=True).load() == KEY
    assert caplog.text == ""


def test_opener_applies_strict_key_permissions(tmp_path: Path, models: tuple[Path, Path]) -> None:
    key = write_key(tmp_path / "k", 0o644)
    security = SecuritySettings(
        model_key=ModelKeySettings(file=key), require_strict_key_permissions=True
    )
    with pytest.raises(ModelLoadError, match="group or others"), model_opener(security)(models[1]):
        pass


def test_plain_model_is_refused_when_encryption_is_required(models: tuple[Path, Path]) -> None:
    plain, _sealed = models
    with model_opener(SecuritySettings())(plain) as path:  # allowed by default
        assert path == plain
    required = SecuritySettings(require_encrypted_models=True)
    with pytest.raises(ModelLoadError, match="not encrypted"), model_opener(required)(plain):
        pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and memfd are Linux")
def test_loading_an_encrypted_model_makes_the_process_non_dumpable(
    tmp_path: Path, models: tuple[Path, Path]
) -> None:
    plain, sealed = models
    key = write_key(tmp_path / "k", 0o600)
    # In a child: the flag is process-wide and never undone.
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from luodi.config.security import ModelKeySettings, SecuritySettings
        from luodi.security.crypto import is_dumpable, model_opener
        security = SecuritySettings(
            model_key=ModelKeySettings(file=Path({str(key)!r})), require_encrypted_models=True
        )
        before = is_dumpable()
        with model_opener(security)(Path({str(sealed)!r})) as path:
            data = path.read_bytes()
        print(before, is_dumpable(), data == Path({str(plain)!r}).read_bytes())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "True"]
