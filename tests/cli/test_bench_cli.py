"""``luodi bench`` against a real server on loopback: the sweep, its table and its JSON."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path

from luodi.evaluation.server_process import LUODI
from tests.conftest import LiveServer


async def _bench(*args: str, api_key: str | None = None) -> tuple[int, str]:
    env = {**os.environ, "COLUMNS": "200"}
    if api_key is not None:
        env["LUODI_API_KEY"] = api_key
    # A subprocess: the server under test runs on this test session's event loop.
    proc = await asyncio.create_subprocess_exec(
        *LUODI,
        "bench",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
    return proc.returncode or 0, out.decode()


async def test_bench_sweeps_levels_and_writes_their_numbers(
    live_server: LiveServer, tmp_path: Path
) -> None:
    out = tmp_path / "serving.json"
    rc, text = await _bench(
        "--url",
        live_server.url,
        "-n",
        "1",
        "-n",
        "3",
        "--max-tokens",
        "5",
        "--requests-per-client",
        "1",
        "--out",
        str(out),
        api_key=live_server.api_key,
    )
    assert rc == 0, text
    assert "luodi bench" in text and "TTFT p50/p95/p99" in text
    result = json.loads(out.read_text())
    assert result["model"] == live_server.model
    levels = result["levels"]
    assert [lv["concurrency"] for lv in levels] == [1, 3]
    for level in levels:
        assert level["errors"] == 0
        assert level["requests"] == level["concurrency"]
        # ignore_eos: every request streams exactly max_tokens tokens.
        assert level["output_tokens"] == 5 * level["concurrency"]
        assert level["throughput_tok_s"] > 0
        assert level["ttft_ms"]["p50"] > 0
        assert level["stream_decode_tok_s"] > 0


async def test_bench_counts_refused_requests_as_errors(live_server: LiveServer) -> None:
    rc, text = await _bench(
        "--url", live_server.url, "--model", live_server.model, "-n", "1", api_key="sk-wrong"
    )
    assert rc != 0
    assert f"every request to {live_server.url} failed" in text


async def test_bench_against_nothing_fails_in_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rc, text = await _bench("--url", f"http://127.0.0.1:{port}", "-n", "1")
    assert rc != 0
    assert f"cannot list models at http://127.0.0.1:{port}" in text
    assert "Traceback" not in text
