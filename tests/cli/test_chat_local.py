"""``luodi chat --local``: the terminal chat with the engine in the same process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model


def test_local_chat_answers_without_a_separate_server(tmp_path: Path, model_cache: Path) -> None:
    env = {
        **os.environ,
        "LUODI_ENGINE__CACHE_DIR": str(model_cache),
        "LUODI_ENGINE__N_CTX": "2048",
        "LUODI_ENGINE__MAX_BATCH_SIZE": "4",
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{tmp_path / 'luodi.db'}",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "luodi.cli",
            "chat",
            "--local",
            "--max-tokens",
            "6",
            "--temperature",
            "0",
        ],
        input="Hello there\n/reset\nAnd again\n/exit\n",
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip()) > 0


def test_local_chat_with_a_bad_model_file_exits_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    env = {**os.environ, "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{tmp_path / 'luodi.db'}"}
    result = subprocess.run(
        [sys.executable, "-m", "luodi.cli", "chat", "--local", "--model-file", str(bad)],
        input="/exit\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "error" in result.stderr
