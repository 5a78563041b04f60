"""Property-based fuzzing of the OpenAPI schema: no request makes the server answer 5xx."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")

pytestmark = pytest.mark.model

LUODI = [sys.executable, "-m", "luodi.cli"]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real ``luodi serve`` with a tiny context, so valid random requests finish fast."""
    tmp = tmp_path_factory.mktemp("fuzz")
    env = {
        **os.environ,
        "LUODI_ENGINE__CACHE_DIR": str(Path.home() / ".cache" / "luodi-tests"),
        "LUODI_ENGINE__N_CTX": "1024",
        "LUODI_ENGINE__MAX_MODEL_LEN": "48",
        "LUODI_ENGINE__MAX_BATCH_SIZE": "4",
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{tmp / 'luodi.db'}",
        "LUODI_SERVER__LOG_LEVEL": "warning",
    }
    subprocess.run(
        [*LUODI, "users", "create", "fuzzer", "--role", "admin"],
        env=env,
        check=True,
        capture_output=True,
    )
    created = subprocess.run(
        [*LUODI, "keys", "create", "--user", "fuzzer"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    key = next(w for w in created.stdout.split() if w.startswith("sk-luodi-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [*LUODI, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
        time.sleep(0.2)
    yield url, key
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def api_schema(fuzz_server: tuple[str, str]) -> object:
    url, _ = fuzz_server
    return schemathesis.openapi.from_url(f"{url}/openapi.json").include(path_regex="^/v1/")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: object, fuzz_server: tuple[str, str]) -> None:
    url, key = fuzz_server
    response = case.call(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120)  # type: ignore[attr-defined]
    assert response.status_code < 500, (
        f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
    )  # type: ignore[attr-defined]
