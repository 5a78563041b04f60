"""Where the engine's time goes between two decodes: the README's gap analysis.

On the default model with 2 threads (``--threads``), in paired, interleaved rounds:
  1. the gap from the end of one ``llama_decode`` to the start of the next, in
     - a bare llama.cpp decode loop, one row (decode, argmax, decode, ...);
     - the luodi engine serving one stream in its own process (``engine.generate``);
     - ``luodi serve`` serving one streamed HTTP request, and 16 at once (there also
       the decode step the gap sits between), with the extra time's share of a 1-stream
       step, and the CPU per streamed token of the server's event loop and of the
       load generator (thread CPU time, /proc/<pid>/task/<tid>/schedstat);
  2. argmax over 16 fresh logits rows, read right after a 16-row decode (what greedy
     sampling reads each step at 16 streams);
  3. a bare batched decode loop's tokens/s at 16 rows over 1 row, with the
     batch-invariant kernels the engine uses and with llama.cpp's defaults.
Every process that decodes wraps ``llama_cpp.llama_decode`` in the same timing shim, so
no engine code changes for the measurement; each kernel set and each engine gets its
own process, as ggml fixes its kernels and OpenMP team per process. Medians per round,
then the median over rounds (ratios: the median of per-round ratios). Prints a table and
writes JSON (``--out``), with the load average and CPU. Never a pass/fail test. The
README's account of where the single-stream gap goes (the time between decodes, the
CPU the event loop and the client take, the argmax at 16 streams, the bare loop's
16-row speed-up) quotes these figures.

    python benchmarks/engine_gaps.py --out bench-results/engine_gaps.json
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import itertools
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import peer  # benchmarks/peer.py, beside this script: the quiet gate
from rich.console import Console
from rich.table import Table

console = Console()
CACHE = Path.home() / ".cache" / "luodi"
PROMPT = "Write a short story about a lighthouse keeper number {i} and the sea."
Record = tuple[int, int, int]  # (start ns, end ns, tokens in the batch) of one llama_decode


class DecodeClock:
    """Times every ``llama_decode`` this process makes, by wrapping llama_cpp's binding.

    ``LlamaModel.decode`` looks the binding up at each call, so the wrapper sees the
    engine's decodes and the bare loops' alike. ``time.monotonic_ns`` is one clock for
    every process on the machine, so another process can slice the records by time.
    """

    def __init__(self) -> None:
        import llama_cpp

        self.records: list[Record] = []
        real = llama_cpp.llama_decode

        def timed(ctx: Any, batch: Any) -> int:
            start = time.monotonic_ns()
            rc = real(ctx, batch)
            self.records.append((start, time.monotonic_ns(), batch.n_tokens))
            return int(rc)

        llama_cpp.llama_decode = timed


def gaps_us(records: list[Record], rows: int) -> list[float]:
    """Time between two consecutive decodes of ``rows`` tokens each (prefills left out)."""
    return [(b[0] - a[1]) / 1e3 for a, b in itertools.pairwise(records) if a[2] == b[2] == rows]


def decodes_ms(records: list[Record], rows: int) -> list[float]:
    return [(end - start) / 1e6 for start, end, n in records if n == rows]


def window(records: list[Record], since: int, until: int) -> list[Record]:
    return [r for r in records if since <= r[0] <= until]


# -- a bare llama.cpp loop, in its own process ------------------------------------------


def _bare_worker(conn: Connection, threads: int, invariant: bool, cache: Path) -> None:
    from luodi.engine.llamacpp.default_model import default_model_path
    from luodi.engine.llamacpp.model import ContextParams, LlamaModel

    clock = DecodeClock()
    model = LlamaModel(
        default_model_path(cache),
        ContextParams(
            n_ctx=4096,
            n_seq_max=16,
            n_batch=512,
            n_threads=threads,
            n_threads_batch=threads,
            batch_invariant=invariant,
        ),
    )
    conn.send("ready")
    while (cmd := conn.recv()) is not None:
        rows, tokens = cmd
        conn.send(_bare_loop(model, clock, rows, tokens))
    model.close()


def _bare_loop(model: Any, clock: DecodeClock, rows: int, tokens: int) -> dict[str, Any]:
    """``rows`` sequences, one token each per ``llama_decode``, argmax, nothing else."""
    import numpy as np

    model.clear()
    prompts = [model.tokenize(PROMPT.format(i=r)) for r in range(rows)]
    model.decode(
        [(t, i, r, i == len(p) - 1) for r, p in enumerate(prompts) for i, t in enumerate(p)]
    )
    pos = [len(p) for p in prompts]
    ends = [sum(pos[: r + 1]) - 1 for r in range(rows)]  # batch index of each prompt's end
    toks = [int(np.argmax(model.logits(i))) for i in ends]
    clock.records.clear()
    argmax_ns: list[int] = []
    start = time.perf_counter()
    if rows == 1:  # benchmarks/serving.py's raw loop, as it is
        tok, p = toks[0], pos[0]
        for _ in range(tokens):
            model.decode([(tok, p, 0, True)])
            tok = int(np.argmax(model.logits(0)))
            p += 1
    else:
        for _ in range(tokens):
            model.decode([(toks[r], pos[r], r, True) for r in range(rows)])
            t0 = time.perf_counter_ns()
            toks = [int(np.argmax(model.logits(r))) for r in range(rows)]
            argmax_ns.append(time.perf_counter_ns() - t0)
            pos = [x + 1 for x in pos]
    elapsed = time.perf_counter() - start
    return {
        "tok_s": rows * tokens / elapsed,
        "gap_us": statistics.median(gaps_us(clock.records, rows)),
        "argmax_us": statistics.median(argmax_ns) / 1e3 if argmax_ns else None,
    }


class BareProcess:
    """A child process holding the model with one kernel set, running bare loops."""

    def __init__(self, threads: int, cache: Path, *, invariant: bool) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_bare_worker, args=(child, threads, invariant, cache))
        self._proc.start()
        self._conn.recv()

    def loop(self, rows: int, tokens: int) -> dict[str, Any]:
        self._conn.send((rows, tokens))
        return dict(self._conn.recv())

    def close(self) -> None:
        self._conn.send(None)
        self._proc.join(timeout=30)


# -- the engine on its own, in its own process ------------------------------------------


def _engine_worker(conn: Connection, threads: int, cache: Path) -> None:
    from luodi.evaluation.load import run

    clock = DecodeClock()
    run(_engine_main(conn, clock, threads, cache))


async def _engine_main(conn: Connection, clock: DecodeClock, threads: int, cache: Path) -> None:
    from luodi.config import EngineSettings
    from luodi.engine.llamacpp.engine import LlamaCppEngine
    from luodi.engine.types import GenerationRequest, SamplingParams

    engine = LlamaCppEngine(EngineSettings(n_threads=threads, max_batch_size=32, cache_dir=cache))
    await engine.start()
    conn.send("ready")
    while (cmd := await asyncio.to_thread(conn.recv)) is not None:
        streams, tokens = cmd
        params = SamplingParams(temperature=0.0, max_tokens=tokens, ignore_eos=True)

        async def one(i: int, params: SamplingParams) -> None:
            request = GenerationRequest(engine.tokenize(PROMPT.format(i=i)), params)
            async for _ in engine.generate(request):
                pass

        clock.records.clear()
        await asyncio.gather(*(one(i, params) for i in range(streams)))
        conn.send(statistics.median(gaps_us(clock.records, streams)))
    await engine.stop()


class EngineProcess:
    """A child process running the luodi engine, serving in-process streams on request."""

    def __init__(self, threads: int, cache: Path) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_engine_worker, args=(child, threads, cache))
        self._proc.start()
        self._conn.recv()

    def gap_us(self, streams: int, tokens: int) -> float:
        self._conn.send((streams, tokens))
        return float(self._conn.recv())

    def close(self) -> None:
        self._conn.send(None)
        self._proc.join(timeout=60)


# -- luodi serve, timed from inside -----------------------------------------------------


def _serve_with_clock(records_out: Path, cli_args: list[str]) -> None:
    """``luodi serve`` with the decode clock; its records are written when it exits."""
    clock = DecodeClock()
    atexit.register(lambda: records_out.write_text(json.dumps(clock.records)))
    from luodi.cli.main import app

    app(args=cli_args, prog_name="luodi")


def thread_cpu_ns(pid: int, tid: int) -> int:
    """CPU time a thread of another process has run, in ns (``/proc/.../schedstat``)."""
    return int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])


def http_window(
    url: str, model: str, streams: int, tokens: int, server_pid: int
) -> tuple[int, int, dict[str, float]]:
    """Run ``streams`` streamed requests at once: the monotonic window they ran in, and
    the CPU per output token of the server's event loop (its main thread, where uvicorn
    runs it) and of the load generator (this process's thread)."""
    from luodi.evaluation.load import LoadConfig, run, run_level

    cfg = LoadConfig(base_url=url, model=model, max_tokens=tokens, requests_per_client=1)
    loop_cpu, client_cpu = thread_cpu_ns(server_pid, server_pid), time.thread_time_ns()
    since = time.monotonic_ns()
    result = run(run_level(cfg, streams))
    until = time.monotonic_ns()
    if result.errors:
        raise RuntimeError(f"{result.errors} of {streams} streamed requests failed")
    out = streams * tokens
    cpu = {
        "event_loop_ms_per_token": (thread_cpu_ns(server_pid, server_pid) - loop_cpu) / 1e6 / out,
        "client_ms_per_token": (time.thread_time_ns() - client_cpu) / 1e6 / out,
    }
    return since, until, cpu


# -- the rounds -------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from luodi.evaluation.server_process import ServerProcess

    n, tokens = args.rows, args.tokens
    records_out = Path(tempfile.mkdtemp()) / "decodes.json"
    env = {
        "LUODI_SERVER__LOG_LEVEL": "warning",
        "LUODI_SECURITY__AUTH_ENABLED": "false",
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{records_out.parent}/bench.db",
        "LUODI_ENGINE__CACHE_DIR": str(args.cache_dir),
    }
    serve = [sys.executable, __file__, "--clock-out", str(records_out)]
    rounds: dict[str, list[Any]] = {
        k: []
        for k in (
            "bare_1", "bare_n", "bare_default_1", "bare_default_n", "engine_1", "cpu_busy_before"
        )
    }  # fmt: skip
    windows: dict[str, list[tuple[int, int, dict[str, float]]]] = {"http_1": [], "http_n": []}
    bare = BareProcess(args.threads, args.cache_dir, invariant=True)
    bare_default = BareProcess(args.threads, args.cache_dir, invariant=False)
    engine = EngineProcess(args.threads, args.cache_dir)
    server_args = ["--threads", str(args.threads), "--max-batch-size", "32"]
    try:
        with ServerProcess(env, server_args, luodi=serve) as server:
            import httpx

            model = httpx.get(f"{server.url}/v1/models").json()["data"][0]["id"]
            assert server.proc is not None
            pid = server.proc.pid
            bare.loop(n, 8)  # warm-up, untimed
            bare_default.loop(n, 8)
            engine.gap_us(1, 8)
            http_window(server.url, model, n, 8, pid)
            for r in range(args.rounds):
                busy = peer.wait_for_quiet(args.max_busy, args.quiet_timeout)
                rounds["cpu_busy_before"].append(busy)
                console.print(f"round {r + 1}/{args.rounds} (CPU {busy:.0%} busy before)")
                rounds["bare_1"].append(bare.loop(1, tokens))
                rounds["engine_1"].append(engine.gap_us(1, tokens))
                windows["http_1"].append(http_window(server.url, model, 1, tokens, pid))
                rounds["bare_n"].append(bare.loop(n, tokens))
                rounds["bare_default_1"].append(bare_default.loop(1, tokens))
                rounds["bare_default_n"].append(bare_default.loop(n, tokens))
                windows["http_n"].append(http_window(server.url, model, n, tokens, pid))
    finally:
        bare.close()
        bare_default.close()
        engine.close()
    decodes: list[Record] = [tuple(r) for r in json.loads(records_out.read_text())]  # type: ignore[misc]
    for key, rows in (("http_1", 1), ("http_n", n)):
        rounds[key] = []
        for since, until, cpu in windows[key]:
            seen = window(decodes, since, until)
            rounds[key].append(
                {
                    "gap_us": statistics.median(gaps_us(seen, rows)),
                    "decode_ms": statistics.median(decodes_ms(seen, rows)),
                    **cpu,
                }
            )
    return rounds


def summarize(rounds: dict[str, list[Any]]) -> dict[str, float]:
    def med(key: str, field: str | None = None) -> float:
        return statistics.median(r[field] if field else r for r in rounds[key])

    def ratio(num: str, den: str, field: str) -> float:
        return statistics.median(
            a[field] / b[field] for a, b in zip(rounds[num], rounds[den], strict=True)
        )

    engine_share = statistics.median(
        (h["gap_us"] - b["gap_us"]) / (h["decode_ms"] * 1e3 + h["gap_us"])
        for h, b in zip(rounds["http_1"], rounds["bare_1"], strict=True)
    )
    return {
        "gap_bare_1_us": med("bare_1", "gap_us"),
        "gap_engine_1_us": med("engine_1"),
        "gap_http_1_us": med("http_1", "gap_us"),
        "decode_http_1_ms": med("http_1", "decode_ms"),
        "engine_python_share_1": engine_share,
        "event_loop_ms_per_token_1": med("http_1", "event_loop_ms_per_token"),
        "client_ms_per_token_1": med("http_1", "client_ms_per_token"),
        "gap_http_n_us": med("http_n", "gap_us"),
        "decode_http_n_ms": med("http_n", "decode_ms"),
        "argmax_n_rows_us": med("bare_n", "argmax_us"),
        "bare_1_tok_s": med("bare_1", "tok_s"),
        "bare_n_tok_s": med("bare_n", "tok_s"),
        "bare_n_over_1": ratio("bare_n", "bare_1", "tok_s"),
        "bare_default_n_over_1": ratio("bare_default_n", "bare_default_1", "tok_s"),
    }


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown CPU"
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--clock-out":  # the server child
        _serve_with_clock(Path(sys.argv[2]), sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64, help="decode steps per measurement")
    parser.add_argument("--rows", type=int, default=16, help="rows (streams) of the batched runs")
    parser.add_argument("--rounds", type=int, default=5, help="paired, interleaved rounds")
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument(
        "--max-busy",
        type=float,
        default=0.25,
        help="before each round, wait (up to --quiet-timeout s) until other work keeps the"
        " CPUs at most this busy (benchmarks/peer.py's quiet gate)",
    )
    parser.add_argument("--quiet-timeout", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=Path("bench-results/engine_gaps.json"))
    args = parser.parse_args()

    load_before = os.getloadavg()
    rounds = measure(args)
    load_after = os.getloadavg()
    s = summarize(rounds)
    n = args.rows
    table = Table(title=f"gaps between decodes (default model, {args.threads} threads)")
    for col in ("measure", "value", "ratio"):
        table.add_column(col, justify="right")
    bare = s["gap_bare_1_us"]
    table.add_row(
        "end of a decode to start of the next: bare loop, 1 row", f"{bare:.0f} us", "1.00x"
    )
    table.add_row(
        "  luodi engine, 1 stream, in-process",
        f"{s['gap_engine_1_us']:.0f} us",
        f"{s['gap_engine_1_us'] / bare:.2f}x",
    )
    table.add_row(
        "  luodi serve, 1 streamed HTTP request",
        f"{s['gap_http_1_us']:.0f} us",
        f"{s['gap_http_1_us'] / bare:.2f}x",
    )
    table.add_row(
        "  luodi serve's extra time between decodes, share of a 1-stream step",
        f"{s['gap_http_1_us'] - bare:.0f} us of {s['decode_http_1_ms']:.1f} ms decodes",
        f"{s['engine_python_share_1'] * 100:.1f}%",
    )
    table.add_row(
        "CPU per streamed token, 1 stream: server event loop / load generator",
        f"{s['event_loop_ms_per_token_1']:.2f} / {s['client_ms_per_token_1']:.2f} ms",
        "",
    )
    table.add_row(
        f"  luodi serve, {n} streamed HTTP requests",
        f"{s['gap_http_n_us'] / 1e3:.2f} ms between {s['decode_http_n_ms']:.0f} ms decodes",
        "",
    )
    table.add_row(
        f"argmax over {n} fresh logits rows (bare loop)",
        f"{s['argmax_n_rows_us'] / 1e3:.2f} ms",
        "",
    )
    table.add_row(
        f"bare loop, {n} rows / 1 row, batch-invariant kernels",
        f"{s['bare_n_tok_s']:.1f} / {s['bare_1_tok_s']:.1f} tok/s",
        f"{s['bare_n_over_1']:.2f}x",
    )
    table.add_row(
        f"bare loop, {n} rows / 1 row, llama.cpp's default kernels",
        "",
        f"{s['bare_default_n_over_1']:.2f}x",
    )
    console.print(table)
    note = (
        f"load average {load_before[0]:.1f} before the run, {load_after[0]:.1f} after it"
        f" (its own work included), {os.cpu_count()} CPUs ({_cpu_model()})"
    )
    if load_before[0] >= 1.0:
        note += "; other work was running, so absolute figures are slow: quote the ratios"
    console.print(note)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "threads": args.threads,
                "tokens": args.tokens,
                "rows": n,
                "load_average": {"before": load_before, "after": load_after},
                "note": note,
                "summary": s,
                "rounds": rounds,
            },
            indent=2,
        )
    )
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    main()
