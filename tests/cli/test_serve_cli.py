"""``luodi serve``: bad model files give one line and a non-zero exit; good ones serve."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MODEL_CACHE, default_gguf

LUODI = [sys.executable, "-m", "luodi.cli"]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LUODI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("make", "expect"),
    [
        (lambda d: d / "missing.gguf", "not found"),
        (lambda d: _write(d / "notes.gguf", b"hello, not a model"), "not a GGUF"),
        (lambda d: _truncated(d / "cut.gguf"), "could not load"),
    ],
)
def test_bad_model_file_gives_one_line_naming_the_path(
    tmp_path: Path, make: object, expect: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    result = run_cli("serve", "--model", str(path), "--port", "1")
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and expect in lines[0]


def test_encrypted_model_with_wrong_key_is_refused_in_one_line(tmp_path: Path) -> None:
    from luodi.security import encrypt_file

    sealed = tmp_path / "small.gguf.enc"
    plain = _truncated(tmp_path / "small.gguf")
    encrypt_file(plain, sealed, bytes(range(32)))
    env = serve_env(tmp_path, MODEL_KEY=bytes(32).hex(), LUODI_SECURITY__MODEL_KEY__ENV="MODEL_KEY")
    result = subprocess.run(
        [*LUODI, "serve", "--model", str(sealed), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "key" in lines[0], result.stderr


def test_a_plaintext_model_is_refused_when_encryption_is_required(tmp_path: Path) -> None:
    plain = _truncated(tmp_path / "small.gguf")
    env = serve_env(tmp_path, LUODI_SECURITY__REQUIRE_ENCRYPTED_MODELS="true")
    result = subprocess.run(
        [*LUODI, "serve", "--model", str(plain), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "encrypt" in lines[0], result.stderr


def test_auth_off_refuses_a_public_address(tmp_path: Path) -> None:
    result = subprocess.run(
        [*LUODI, "serve", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=serve_env(tmp_path),
    )
    assert result.returncode != 0
    assert "0.0.0.0" in result.stderr and "Traceback" not in result.stderr


def test_invalid_option_is_refused_with_a_clear_message() -> None:
    result = run_cli("serve", "--n-ctx", "10")
    assert result.returncode != 0
    assert "n_ctx" in result.stderr and "Traceback" not in result.stderr


def serve_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "LUODI_ENGINE__CACHE_DIR": str(MODEL_CACHE),
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{tmp_path / 'luodi.db'}",
        "LUODI_SECURITY__AUTH_ENABLED": "false",
        **extra,
    }


@pytest.mark.model
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_serve_starts_and_answers_on_loopback(tmp_path: Path, encrypted: bool) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = ["--port", str(port), "--threads", "2", "--n-ctx", "2048", "--max-batch-size", "4"]
    env = serve_env(tmp_path)
    if encrypted:
        from luodi.security import encrypt_file

        key = bytes(range(32))
        sealed = tmp_path / "model.gguf.enc"
        encrypt_file(default_gguf(), sealed, key)
        args += ["--model", str(sealed)]
        env |= {"MODEL_KEY": key.hex(), "LUODI_SECURITY__MODEL_KEY__ENV": "MODEL_KEY"}
    proc = subprocess.Popen(
        [*LUODI, "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                resp = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                if resp.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        model = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"][0]["id"]
        done = httpx.post(
            f"http://127.0.0.1:{port}/v1/completions",
            json={"model": model, "prompt": "1, 2, 3,", "max_tokens": 4, "temperature": 0},
            timeout=60,
        ).json()
        assert done["usage"]["completion_tokens"] == 4
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated(path: Path) -> Path:
    with default_gguf().open("rb") as src:
        path.write_bytes(src.read(4 << 20))
    return path
