"""Kill the server under load: the audit chain still verifies and every request that
got its answer has its record (an answer is sent only after its record is committed)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from luodi.evaluation.server_process import LUODI, ServerProcess, create_key

pytestmark = pytest.mark.model


def test_sigkill_under_load_loses_no_answered_request(tmp_path: Path, model_cache: Path) -> None:
    env = {
        "LUODI_ENGINE__CACHE_DIR": str(model_cache),
        "LUODI_ENGINE__N_CTX": "2048",
        "LUODI_ENGINE__MAX_BATCH_SIZE": "8",
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{tmp_path / 'luodi.db'}",
        "LUODI_SERVER__LOG_LEVEL": "warning",
    }
    key = create_key(env, "loader", "developer")
    headers = {"Authorization": f"Bearer {key}"}
    answered = 0
    lock = threading.Lock()
    enough = threading.Event()
    with ServerProcess(env) as server:
        name = httpx.get(f"{server.url}/v1/models", headers=headers).json()["data"][0]["id"]

        def one(i: int) -> None:
            nonlocal answered
            try:
                resp = httpx.post(
                    f"{server.url}/v1/completions",
                    headers=headers,
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
            server.kill()
    full_env = {**os.environ, **env}
    verify = subprocess.run(
        [*LUODI, "audit", "verify"], env=full_env, capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    query = subprocess.run(
        [*LUODI, "audit", "query", "--user", "loader", "--limit", "1000"],
        env=full_env,
        capture_output=True,
        text=True,
        check=True,
    )
    records = [json.loads(line) for line in query.stdout.splitlines() if line.startswith("{")]
    allowed = [r for r in records if r["decision"] == "allowed"]
    assert len(allowed) >= answered, (len(allowed), answered)
