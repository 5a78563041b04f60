"""Kill the server under load: the audit chain still verifies and every request that
got its answer has its record (an answer is sent only after its record is committed)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.model

LUODI = [sys.executable, "-m", "luodi.cli"]


def test_sigkill_under_load_loses_no_answered_request(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LUODI_ENGINE__CACHE_DIR": str(Path.home() / ".cache" / "luodi-tests"),
        "LUODI_ENGINE__N_CTX": "2048",
        "LUODI_ENGINE__MAX_BATCH_SIZE": "8",
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{tmp_path / 'luodi.db'}",
        "LUODI_SERVER__LOG_LEVEL": "warning",
    }
    subprocess.run(
        [*LUODI, "users", "create", "loader", "--role", "developer"],
        env=env,
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [*LUODI, "keys", "create", "--user", "loader"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    key = next(w for w in out.split() if w.startswith("sk-luodi-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [*LUODI, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        model = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}).json()
        name = model["data"][0]["id"]
        answered = 0
        lock = threading.Lock()
        enough = threading.Event()

        def one(i: int) -> None:
            nonlocal answered
            try:
                resp = httpx.post(
                    f"{url}/v1/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": name, "prompt": f"Request {i}:", "max_tokens": 4},
                    timeout=60,
                )
            except httpx.HTTPError:
                return  # in flight when the server died: no answer, no promise
            if resp.status_code == 200:
                with lock:
                    answered += 1
                    if answered >= 10:
                        enough.set()

        with ThreadPoolExecutor(max_workers=8) as pool:
            for i in range(60):
                pool.submit(one, i)
            assert enough.wait(timeout=120), "the server answered too few requests"
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    verify = subprocess.run([*LUODI, "audit", "verify"], env=env, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    query = subprocess.run(
        [*LUODI, "audit", "query", "--user", "loader", "--limit", "1000"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    records = [json.loads(line) for line in query.stdout.splitlines() if line.startswith("{")]
    allowed = [r for r in records if r["decision"] == "allowed"]
    assert len(allowed) >= answered, (len(allowed), answered)
