"""luodi against llama.cpp's own llama-server: same model, same threads, same load.

The peer is built from the llama.cpp sources vendored in the pinned llama-cpp-python
sdist (pip downloads it; cmake builds only the ``llama-server`` target, cached under
``bench-results/llama-server-<version>``), so both sides run the same llama.cpp.

luodi runs with its whole gateway chain on: auth with an API key, a quota on that
key, the audit log and the default PII policy. llama-server runs with no auth. Both
get the default GGUF, the same CPU threads, the same context size and 32 parallel
sequences. Each concurrency level (1, 16, 32 streams of 64-token completions by
default) is measured in paired rounds, luodi then llama-server then luodi..., and
the server not being measured is paused (SIGSTOP), so neither steals the other's
cores. The ratio quoted is the median of the per-round luodi / llama-server ratios.

    python benchmarks/peer.py --out bench-results/peer.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from luodi.engine.llamacpp.default_model import default_model_path
from luodi.evaluation.load import LoadConfig, run, run_level
from luodi.evaluation.server_process import LUODI, ServerProcess

console = Console()
CACHE = Path.home() / ".cache" / "luodi"
BUILD_ROOT = Path("bench-results")


def build_llama_server(root: Path = BUILD_ROOT) -> Path:
    """The ``llama-server`` binary of the pinned llama-cpp-python's llama.cpp (built once)."""
    pinned = version("llama-cpp-python")
    home = (root / f"llama-server-{pinned}").resolve()
    binary = home / "build" / "bin" / "llama-server"
    if binary.exists():
        return binary
    home.mkdir(parents=True, exist_ok=True)
    console.print(f"building llama-server {pinned} (once; several minutes on two cores)")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             f"llama-cpp-python=={pinned}", "-d", tmp],
            check=True,
        )  # fmt: skip
        sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            tar.extractall(home / "src", filter="data")
    source = next((home / "src").glob("llama_cpp_python-*/vendor/llama.cpp"))
    build = home / "build"
    subprocess.run(
        ["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
         "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
         "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DBUILD_SHARED_LIBS=OFF"],
        check=True,
    )  # fmt: skip
    jobs = str(os.cpu_count() or 2)
    subprocess.run(
        ["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs], check=True
    )
    return binary


def _key_with_quota(env: dict[str, str]) -> str:
    """A developer's key with per-minute quotas, so the limiter runs on every request."""
    subprocess.run([*LUODI, "users", "create", "bench", "--role", "developer"],
                   env={**os.environ, **env}, check=True, capture_output=True)  # fmt: skip
    out = subprocess.run(
        [*LUODI, "keys", "create", "--user", "bench", "--rpm", "100000", "--tpm", "100000000"],
        env={**os.environ, **env}, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return next(word for word in out.split() if word.startswith("sk-luodi-"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def llama_server(
    binary: Path, model: Path, *, threads: int, n_ctx: int, parallel: int
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """llama-server on a free loopback port, until ``/health`` says ok."""
    port = _free_port()
    proc = subprocess.Popen(
        [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
         "-t", str(threads), "-tb", str(threads), "-c", str(n_ctx), "-np", str(parallel),
         "--no-webui"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama-server did not start (exit {proc.returncode})")
            time.sleep(0.5)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def paused(pid: int) -> Iterator[None]:
    """SIGSTOP a server for the length of the block, so it takes no CPU."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=16384)
    parser.add_argument("--parallel", type=int, default=32)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 16, 32])
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds per level")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-results/peer.json"))
    args = parser.parse_args()

    binary = build_llama_server()
    model = default_model_path(CACHE)
    scratch = tempfile.mkdtemp()
    env = {
        "LUODI_SERVER__LOG_LEVEL": "warning",
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{scratch}/peer.db",
        "LUODI_KNOWLEDGE__DATA_DIR": f"{scratch}/kb",
        "LUODI_ENGINE__N_CTX": str(args.n_ctx),
    }
    key = _key_with_quota(env)
    luodi_args = ["--threads", str(args.threads), "--max-batch-size", str(args.parallel)]
    rows: dict[int, dict[str, list[float]]] = {
        level: {"luodi": [], "llama_server": []} for level in args.levels
    }
    with (
        ServerProcess(env, luodi_args) as luodi,
        llama_server(
            binary, model, threads=args.threads, n_ctx=args.n_ctx, parallel=args.parallel
        ) as (peer_url, peer),
    ):
        assert luodi.proc is not None
        served = httpx.get(f"{luodi.url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        name = served.json()["data"][0]["id"]
        sides = {
            "luodi": (LoadConfig(luodi.url, name, args.max_tokens, args.requests_per_client,
                                 api_key=key), peer.pid),
            "llama_server": (LoadConfig(peer_url, name, args.max_tokens,
                                        args.requests_per_client), luodi.proc.pid),
        }  # fmt: skip
        for cfg, other in sides.values():  # warm both, each alone
            with paused(other):
                run(run_level(cfg, 1))
        for level in args.levels:
            for _ in range(args.rounds):
                for side, (cfg, other) in sides.items():
                    with paused(other):
                        result = run(run_level(cfg, level))
                    if result.errors:
                        raise RuntimeError(f"{side}: {result.errors} failed requests")
                    rows[level][side].append(result.throughput_tok_s)

    table = Table(title=f"luodi (gateway chain on) vs llama-server, {args.threads} threads")
    for col in ("streams", "luodi tok/s", "llama-server tok/s", "luodi / llama-server"):
        table.add_column(col, justify="right")
    summary = []
    for level, sides_rates in rows.items():
        ratios = [a / b for a, b in zip(sides_rates["luodi"], sides_rates["llama_server"],
                                        strict=True)]  # fmt: skip
        entry = {
            "streams": level,
            "luodi_tok_s": sides_rates["luodi"],
            "llama_server_tok_s": sides_rates["llama_server"],
            "ratio_median": statistics.median(ratios),
        }
        summary.append(entry)
        table.add_row(
            str(level),
            f"{statistics.median(sides_rates['luodi']):.1f}",
            f"{statistics.median(sides_rates['llama_server']):.1f}",
            f"{entry['ratio_median']:.2f}x",
        )
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "threads": args.threads,
                "n_ctx": args.n_ctx,
                "parallel": args.parallel,
                "max_tokens": args.max_tokens,
                "llama_cpp_python": version("llama-cpp-python"),
                "gateway_chain": "auth + key quota + audit + PII (default policy)",
                "levels": summary,
            },
            indent=2,
        )
    )
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    main()
