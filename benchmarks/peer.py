"""luodi against llama.cpp's own llama-server: same model, same threads, same load.

The peer is built from the llama.cpp sources vendored in the pinned llama-cpp-python
sdist (pip downloads it; cmake builds only the ``llama-server`` target, cached under
``bench-results/llama-server-<version>``), so both sides run the same llama.cpp.

luodi runs with its whole gateway chain on: auth with an API key, a quota on that
key, the audit log and the default PII policy. llama-server runs with no auth. Both
get the default GGUF, the same CPU threads, the same context size and 32 parallel
sequences; each runs its own default kernels (luodi's batch-invariant ones, llama.cpp's
repacked weights and F16 KV cache). Each concurrency level (1, 16, 32 streams of
64-token completions by default) is measured in paired rounds, the two servers one
after the other, who goes first swapping each round, and the server not being
measured is paused (SIGSTOP), so neither steals the other's cores. Tokens/s counts
requests x ``max_tokens`` (both are checked to generate exactly that many with
``ignore_eos``) over the wall time. The ratio quoted is the median of the per-round
luodi / llama-server ratios; the JSON keeps every round and the load averages.

    python benchmarks/serving.py --peer --out bench-results/peer.json
    python benchmarks/peer.py --out bench-results/peer.json     # the same
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

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


def _exact_length(url: str, model: str, max_tokens: int, key: str | None) -> None:
    """Both servers must generate exactly ``max_tokens`` with ``ignore_eos``.

    Throughput is then counted as requests x ``max_tokens``: stream chunks are no token
    count (llama-server ends a stream with an extra chunk that carries no text, and
    luodi's PII restorer may hold text back across chunks).
    """
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": model, "prompt": "Once upon a time", "max_tokens": max_tokens,
            "temperature": 0.0, "ignore_eos": True}  # fmt: skip
    resp = httpx.post(f"{url}/v1/completions", json=body, headers=headers, timeout=120)
    resp.raise_for_status()
    got = resp.json()["usage"]["completion_tokens"]
    if got != max_tokens:
        raise RuntimeError(f"{url} generated {got} tokens, not {max_tokens}, with ignore_eos")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU together, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def wait_for_quiet(max_busy: float, timeout_s: float, sample_s: float = 1.0) -> float:
    """Wait until the machine's CPUs are at most ``max_busy`` busy over ``sample_s``
    (both servers idle or paused: the busy share is other work), or ``timeout_s``
    passes; returns the last busy share. On a shared 2-core machine ggml's OpenMP
    threads spin in every barrier, and a third busy process slows a decode by up to
    10x, far more than its share of the cores: rounds measured then are noise."""
    deadline = time.monotonic() + timeout_s
    while True:
        b0, t0 = _cpu_ticks()
        time.sleep(sample_s)
        b1, t1 = _cpu_ticks()
        busy = (b1 - b0) / max(1, t1 - t0)
        if busy <= max_busy or time.monotonic() > deadline:
            return round(busy, 3)


def compare(
    *,
    threads: int = 2,
    n_ctx: int = 16384,
    parallel: int = 32,
    levels: Sequence[int] = (1, 16, 32),
    rounds: int = 3,
    max_tokens: int = 64,
    requests_per_client: int = 1,
    max_busy: float = 0.25,
    quiet_timeout_s: float = 120.0,
    batch_invariant: bool = True,
) -> dict[str, Any]:
    """Paired rounds of luodi (gateway chain on) and llama-server; the JSON summary."""
    binary = build_llama_server()
    model = default_model_path(CACHE)
    scratch = tempfile.mkdtemp()
    env = {
        "LUODI_SERVER__LOG_LEVEL": "warning",
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{scratch}/peer.db",
        "LUODI_KNOWLEDGE__DATA_DIR": f"{scratch}/kb",
        "LUODI_ENGINE__N_CTX": str(n_ctx),
        "LUODI_ENGINE__BATCH_INVARIANT": str(batch_invariant).lower(),
    }
    key = _key_with_quota(env)
    luodi_args = ["--threads", str(threads), "--max-batch-size", str(parallel)]
    rows: dict[int, dict[str, list[float]]] = {
        level: {"luodi": [], "llama_server": []} for level in levels
    }
    loads: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    load_before = _load()
    with (
        ServerProcess(env, luodi_args) as luodi,
        llama_server(binary, model, threads=threads, n_ctx=n_ctx, parallel=parallel) as (
            peer_url,
            peer,
        ),
    ):
        assert luodi.proc is not None
        served = httpx.get(f"{luodi.url}/v1/models", headers={"Authorization": f"Bearer {key}"})
        name = served.json()["data"][0]["id"]
        sides = {
            "luodi": (LoadConfig(luodi.url, name, max_tokens, requests_per_client,
                                 api_key=key), peer.pid),
            "llama_server": (LoadConfig(peer_url, name, max_tokens, requests_per_client),
                             luodi.proc.pid),
        }  # fmt: skip
        for side, (cfg, other) in sides.items():  # warm both, each alone
            with paused(other):
                _exact_length(cfg.base_url, name, max_tokens, cfg.api_key)
                if (warm := run(run_level(cfg, max(levels)))).errors:
                    raise RuntimeError(f"{side}: {warm.errors} failed requests in the warm-up")
        for r in range(rounds):
            # Each round swaps who goes first, so a drift in load hits both alike.
            order = list(sides.items()) if r % 2 == 0 else list(sides.items())[::-1]
            for level in levels:
                busy = wait_for_quiet(max_busy, quiet_timeout_s)
                pairs.append({"round": r + 1, "streams": level, "cpu_busy_before": busy,
                              "load_average": _load()})  # fmt: skip
                for side, (cfg, other) in order:
                    with paused(other):
                        result = run(run_level(cfg, level))
                    if result.errors:
                        raise RuntimeError(f"{side}: {result.errors} failed requests")
                    rows[level][side].append(result.requests * max_tokens / result.wall_s)
                console.print(
                    f"round {r + 1}, {level} streams (CPU {busy:.0%} busy before):"
                    f" luodi {rows[level]['luodi'][-1]:.1f},"
                    f" llama-server {rows[level]['llama_server'][-1]:.1f} tok/s"
                )
            loads.append({"round": r + 1, "load_average": _load()})
            console.print(f"round {r + 1}/{rounds}, load average {loads[-1]['load_average']}")

    summary = []
    for level, rates in rows.items():
        ratios = [a / b for a, b in zip(rates["luodi"], rates["llama_server"], strict=True)]
        summary.append(
            {
                "streams": level,
                "luodi_tok_s": rates["luodi"],
                "llama_server_tok_s": rates["llama_server"],
                "ratios": ratios,
                "ratio_median": statistics.median(ratios),
            }
        )
    return {
        "threads": threads,
        "n_ctx": n_ctx,
        "parallel": parallel,
        "max_tokens": max_tokens,
        "requests_per_client": requests_per_client,
        "rounds": rounds,
        "llama_cpp_python": version("llama-cpp-python"),
        "gateway_chain": "auth + key quota (rpm/tpm) + audit + PII (default policy)",
        "luodi_batch_invariant": batch_invariant,
        "cpus": os.cpu_count(),
        "load_average": {"before": load_before, "per_round": loads, "after": _load()},
        "quiet_gate": {"max_busy": max_busy, "timeout_s": quiet_timeout_s, "pairs": pairs},
        "levels": summary,
    }


def print_table(result: dict[str, Any]) -> None:
    """The luodi / llama-server table, side by side per level."""
    kernels = "batch-invariant" if result["luodi_batch_invariant"] else "llama.cpp's default"
    table = Table(
        title=f"luodi (gateway chain on, {kernels} kernels) vs llama-server,"
        f" {result['threads']} threads,"
        f" median of {result['rounds']} paired rounds"
    )
    for col in ("streams", "luodi tok/s", "llama-server tok/s", "per-round ratios",
                "luodi / llama-server"):  # fmt: skip
        table.add_column(col, justify="right")
    for entry in result["levels"]:
        table.add_row(
            str(entry["streams"]),
            f"{statistics.median(entry['luodi_tok_s']):.1f}",
            f"{statistics.median(entry['llama_server_tok_s']):.1f}",
            " ".join(f"{x:.2f}" for x in entry["ratios"]),
            f"{entry['ratio_median']:.2f}x",
        )
    console.print(table)
    load = result["load_average"]
    console.print(f"load average before {load['before']}, after {load['after']}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The peer comparison's options (benchmarks/serving.py --peer takes them too)."""
    parser.add_argument("--n-ctx", type=int, default=16384)
    parser.add_argument("--parallel", type=int, default=32)
    parser.add_argument("--peer-levels", type=int, nargs="+", default=[1, 16, 32])
    parser.add_argument("--peer-rounds", type=int, default=5, help="paired rounds per level")
    parser.add_argument(
        "--max-busy",
        type=float,
        default=0.25,
        help="before each pair, wait (up to --quiet-timeout) until other work keeps the"
        " CPUs at most this busy",
    )
    parser.add_argument("--quiet-timeout", type=float, default=120.0)
    parser.add_argument(
        "--requests-per-client",
        type=int,
        default=1,
        help="1: llama-server drops a kept-alive connection after a streamed answer, and"
        " the load generator's next request on it fails",
    )


def run_from(args: argparse.Namespace) -> dict[str, Any]:
    result = compare(
        threads=args.threads,
        n_ctx=args.n_ctx,
        parallel=args.parallel,
        levels=args.peer_levels,
        rounds=args.peer_rounds,
        max_tokens=args.max_tokens,
        requests_per_client=args.requests_per_client,
        max_busy=args.max_busy,
        quiet_timeout_s=args.quiet_timeout,
        batch_invariant=not args.no_batch_invariant,
    )
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    console.print(f"written to {args.out}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--no-batch-invariant",
        action="store_true",
        help="serve luodi with llama.cpp's default kernels (engine.batch_invariant: false)",
    )
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("bench-results/peer.json"))
    add_arguments(parser)
    run_from(parser.parse_args())


if __name__ == "__main__":
    main()
