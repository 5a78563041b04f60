"""``luodi serve`` on SIGTERM: stop admitting, drain, end what is left cleanly, exit 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.model

LUODI = [sys.executable, "-m", "luodi.cli"]
MODEL = "gemma-3-270m-q4_k_m"


async def _stream_lines(
    http: httpx.AsyncClient, body: dict[str, object], decoding: asyncio.Event
) -> list[str]:
    lines = []
    async with http.stream("POST", "/v1/completions", json=body) as resp:
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if line.startswith("data: "):
                lines.append(line)
                if len(lines) == 2:
                    decoding.set()
    return lines


async def _until_running(http: httpx.AsyncClient, n: int) -> None:
    """Bounded poll of another process's state: until ``n`` sequences are decoding."""
    for _ in range(600):
        health = (await http.get("/health")).json()
        if health["models"][MODEL].get("running", 0) >= n:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{n} request(s) never ran")


async def test_sigterm_drains_then_ends_what_is_left_and_exits_zero(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = tmp_path / "luodi.db"
    env = {
        **os.environ,
        "LUODI_SECURITY__AUTH_ENABLED": "false",
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{db}",
        "LUODI_KNOWLEDGE__DATA_DIR": str(tmp_path / "kb"),
        "LUODI_SERVER__DRAIN_TIMEOUT_S": "10",
    }
    log = (tmp_path / "serve.log").open("w+")
    proc = await asyncio.create_subprocess_exec(
        *LUODI, "serve", "--port", str(port), env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            deadline = time.monotonic() + 180
            while True:  # bounded wait for another process to bind
                try:
                    if (await http.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.returncode is None, "serve exited"
                assert time.monotonic() < deadline, "serve did not start"
                await asyncio.sleep(0.2)
            long = {"model": MODEL, "prompt": "Tell a long story", "max_tokens": 4000,
                    "ignore_eos": True}  # fmt: skip
            short = {"model": MODEL, "prompt": "Hello", "max_tokens": 4, "ignore_eos": True}
            buffered = asyncio.create_task(http.post("/v1/completions", json=long))
            await _until_running(http, 1)
            cut, whole = asyncio.Event(), asyncio.Event()
            streaming = asyncio.create_task(_stream_lines(http, {**long, "stream": True}, cut))
            await asyncio.wait_for(cut.wait(), 60)
            finishing = asyncio.create_task(_stream_lines(http, {**short, "stream": True}, whole))
            await asyncio.wait_for(whole.wait(), 60)  # all three are decoding
            began = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            answer = await buffered
            lines = await streaming
            short_lines = await finishing
            exit_code = await asyncio.wait_for(proc.wait(), 60)
            took = time.monotonic() - began
            with pytest.raises(httpx.TransportError):  # no longer listening
                await http.get("/health")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log.seek(0)
    output = log.read()

    # The short stream finished within the drain time, whole.
    assert json.loads(short_lines[-2].removeprefix("data: "))["choices"][0]["finish_reason"] == (
        "length"
    )
    # The long non-streaming request was ended at the drain time: 503, retry elsewhere.
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"] == "1"
    assert "shutting down" in answer.json()["error"]["message"]
    # The long stream was ended at the drain time: a last chunk saying it was cut, the
    # error event the OpenAI SDKs raise on, then [DONE].
    assert lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2].removeprefix("data: "))["error"]
    assert "shutting down" in error["message"]
    assert json.loads(lines[-3].removeprefix("data: "))["choices"][0]["finish_reason"] == "error"
    assert exit_code == 0
    assert 10 <= took < 10 + 15, took
    assert "Traceback" not in output, output[-3000:]
    with sqlite3.connect(db) as conn:
        reasons = [r for (r,) in conn.execute("SELECT reason FROM audit_records ORDER BY seq")]
    assert any(r and "shutting down" in r for r in reasons), reasons
