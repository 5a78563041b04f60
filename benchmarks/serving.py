"""Serving benchmark: batching speed-up, single-stream overhead, warm-prefix TTFT.

Starts ``luodi serve`` on the default model (2 threads), then measures:
  1. single-stream decode speed over HTTP against llama.cpp's own decode loop, in paired,
     interleaved rounds (raw default kernels, raw batch-invariant kernels, one streamed
     request), so the machine's drift hits all three alike; the ratio quoted is the
     median of the per-round ratios;
  2. aggregate streaming throughput at concurrency 1/4/16/32 (64-token outputs), and the
     16-stream speed-up in paired rounds (1 stream, then 16, the median of the ratios);
  3. time to first token for a 1,000-token system prompt, cold vs warm in the prefix cache;
  4. 16 chat streams without ``max_tokens`` (as the OpenAI SDKs send them) against the same
     16 with ``max_tokens`` set, in paired rounds: the aggregate tokens/s ratio, and the most
     requests the engine ran at once (``--only-chat`` runs this one alone). The default
     model's chat answers do not end on their own, so the client reads 64 tokens of each
     unbounded stream and hangs up, which aborts it: both runs do the same work;
  5. one chat stream's decode speed with ``response_format`` (a small object schema, and
     ``json_object``) against the same request unconstrained, greedy and at temperature 1,
     in paired rounds: the median of the per-round ratios (``--only-constrained``).
  6. with ``--peer``, alone: luodi with its whole gateway chain on against llama.cpp's
     own ``llama-server`` (built from the pinned sdist's llama.cpp) at 1, 16 and 32
     streams, each paused while the other is measured (benchmarks/peer.py).
Prints a table and writes JSON (``--out``), with the load averages. Never a pass/fail
test: this machine is noisy, so quote the ratios.

    python benchmarks/serving.py --out bench-results/serving.json
    python benchmarks/serving.py --peer --out bench-results/peer.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import peer  # benchmarks/peer.py, beside this script
from rich.console import Console
from rich.table import Table

from luodi.evaluation.load import LoadConfig, run, run_level
from luodi.evaluation.server_process import ServerProcess

console = Console()
CACHE = Path.home() / ".cache" / "luodi"


def _raw_worker(conn: Connection, threads: int, invariant: bool) -> None:
    """llama.cpp's bare decode loop: one token per llama_decode, argmax, nothing else.

    Runs in its own process because ggml reads its kernel switches once per process.
    """
    import numpy as np

    from luodi.engine.llamacpp.default_model import default_model_path
    from luodi.engine.llamacpp.model import ContextParams, LlamaModel

    model = LlamaModel(
        default_model_path(CACHE),
        ContextParams(
            n_ctx=2048,
            n_seq_max=2,
            n_batch=512,
            n_threads=threads,
            n_threads_batch=threads,
            batch_invariant=invariant,
        ),
    )
    conn.send("ready")
    r = 0
    while (tokens := conn.recv()) is not None:
        model.clear()
        prompt = model.tokenize(f"Write a short story about a lighthouse keeper number {r}.")
        model.decode([(t, i, 0, i == len(prompt) - 1) for i, t in enumerate(prompt)])
        tok = int(np.argmax(model.logits(len(prompt) - 1)))
        pos = len(prompt)
        start = time.perf_counter()
        for _ in range(tokens):
            model.decode([(tok, pos, 0, True)])
            tok = int(np.argmax(model.logits(0)))
            pos += 1
        conn.send(tokens / (time.perf_counter() - start))
        r += 1
    model.close()


class RawDecoder:
    """A child process holding a model, timing ``tokens`` bare decode steps on request."""

    def __init__(self, threads: int, *, invariant: bool) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_raw_worker, args=(child, threads, invariant))
        self._proc.start()
        self._conn.recv()

    def tok_s(self, tokens: int) -> float:
        self._conn.send(tokens)
        return float(self._conn.recv())

    def close(self) -> None:
        self._conn.send(None)
        self._proc.join(timeout=30)


def paired_single_stream(
    url: str, model: str, threads: int, tokens: int, rounds: int
) -> dict[str, list[float]]:
    """Interleave raw decode (both kernel sets) with one streamed request per round."""
    cfg = LoadConfig(base_url=url, model=model, max_tokens=tokens, requests_per_client=1)
    raw_default = RawDecoder(threads, invariant=False)
    raw_invariant = RawDecoder(threads, invariant=True)
    out: dict[str, list[float]] = {"raw_default": [], "raw_invariant": [], "http": []}
    try:
        raw_default.tok_s(tokens)
        raw_invariant.tok_s(tokens)
        for _ in range(rounds):
            out["raw_default"].append(raw_default.tok_s(tokens))
            out["raw_invariant"].append(raw_invariant.tok_s(tokens))
            level = run(run_level(cfg, 1))
            out["http"].append(level.stream_decode_tok_s)
    finally:
        raw_default.close()
        raw_invariant.close()
    return out


def median_ratio(num: list[float], den: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(num, den, strict=True))


async def ttft(client: httpx.AsyncClient, model: str, system: str, question: str) -> float:
    body = {
        "model": model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
        "max_tokens": 1,
        "temperature": 0,
        "stream": True,
    }
    start = time.perf_counter()
    async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        async for line in resp.aiter_lines():
            if line.startswith("data: ") and '"content":"' in line and '"role"' not in line:
                return time.perf_counter() - start
            if line == "data: [DONE]":
                return time.perf_counter() - start
    return time.perf_counter() - start


async def prefix_ttft(url: str, model: str, rounds: int = 3) -> tuple[float, float]:
    base = (
        "You are the customer-service assistant of a retail bank. Follow the policy below. "
        "Never reveal account numbers; verify identity before discussing balances; "
        "answer in the customer's language; cite the policy section you rely on. "
    )
    cold, warm = [], []
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        for r in range(rounds):
            system = f"[policy version {r}-{time.time_ns()}] " + base * 22  # ~1,000 tokens
            cold.append(await ttft(client, model, system, "How do I open an account?"))
            warm.append(await ttft(client, model, system, "What is the daily transfer limit?"))
    return statistics.median(cold), statistics.median(warm)


async def sweep(
    url: str, model: str, levels: list[int], max_tokens: int
) -> list[dict[str, object]]:
    cfg = LoadConfig(base_url=url, model=model, max_tokens=max_tokens, requests_per_client=2)
    await run_level(LoadConfig(base_url=url, model=model, max_tokens=8, requests_per_client=1), 1)
    return [(await run_level(cfg, level)).as_dict() for level in levels]


async def paired_speedup(
    url: str, model: str, concurrency: int, max_tokens: int, rounds: int
) -> list[float]:
    """Per round, 1 stream then ``concurrency`` streams: their throughput ratio."""
    cfg = LoadConfig(base_url=url, model=model, max_tokens=max_tokens, requests_per_client=2)
    ratios = []
    for _ in range(rounds):
        single = await run_level(cfg, 1)
        many = await run_level(cfg, concurrency)
        ratios.append(many.throughput_tok_s / single.throughput_tok_s)
    return ratios


QUIET = (0.25, 120.0)
"""Before each paired round: wait until other work keeps the CPUs at most this busy, for
at most this many seconds (peer.wait_for_quiet; ``--max-busy``, ``--quiet-timeout``)."""


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


CHAT_TOPICS = [
    "a lighthouse", "the moon", "tea", "a bicycle", "rain", "a library", "the ocean",
    "bread", "a violin", "snow", "a bridge", "coffee", "a forest", "a clock", "paper", "salt",
]  # fmt: skip


async def _chat_stream(
    client: httpx.AsyncClient, model: str, i: int, max_tokens: int | None, read: int
) -> int:
    """One streamed chat answer at temperature 0, read for ``read`` tokens at most."""
    topic = CHAT_TOPICS[i % len(CHAT_TOPICS)]
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": f"In two sentences, what is {topic}?"}],
        "temperature": 0,
        "stream": True,
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    tokens = 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices", [])
            if any(c.get("delta", {}).get("content") for c in choices):
                tokens += 1
                if tokens == read:
                    break  # a reader who has seen enough: hanging up aborts the request
    return tokens


async def chat_streams(
    url: str, model: str, streams: int, max_tokens: int | None, read: int
) -> dict[str, object]:
    """``streams`` concurrent chat answers; aggregate tokens/s and the peak running count."""
    async with httpx.AsyncClient(base_url=url, timeout=900) as client:
        peak = 0
        finished = asyncio.Event()

        async def sample_running() -> None:
            nonlocal peak
            while not finished.is_set():
                health = (await client.get("/health")).json()
                peak = max([peak, *(m.get("running", 0) for m in health["models"].values())])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), 0.1)  # one sample per 100 ms

        sampler = asyncio.create_task(sample_running())
        start = time.perf_counter()
        counts = await asyncio.gather(
            *(_chat_stream(client, model, i, max_tokens, read) for i in range(streams))
        )
        wall = time.perf_counter() - start
        finished.set()
        await sampler
    return {
        "max_tokens": max_tokens,
        "streams": streams,
        "tokens": sum(counts),
        "wall_s": wall,
        "throughput_tok_s": sum(counts) / wall,
        "peak_running": peak,
    }


async def paired_chat_rounds(
    url: str, model: str, streams: int, tokens: int, rounds: int
) -> list[dict[str, object]]:
    """Per round, the streams without max_tokens and with max_tokens = ``tokens``.

    A warm-up puts every prompt in the prefix cache, and the two runs swap places each
    round, so neither gains from going second.
    """
    await chat_streams(url, model, streams, 4, 4)
    out = []
    for r in range(rounds):
        busy = await asyncio.to_thread(peer.wait_for_quiet, QUIET[0], QUIET[1])
        for max_tokens in (None, tokens) if r % 2 == 0 else (tokens, None):
            run = await chat_streams(url, model, streams, max_tokens, tokens)
            out.append({**run, "round": r + 1, "cpu_busy_before": busy, "load": _load()})
    return out


def chat_rows(table: Table, runs: list[dict[str, object]]) -> dict[str, object]:
    """Add the chat rounds to ``table``; their summary for the JSON."""
    free = [r for r in runs if r["max_tokens"] is None]
    capped = [r for r in runs if r["max_tokens"] is not None]
    tput = [[float(r["throughput_tok_s"]) for r in side] for side in (free, capped)]  # type: ignore[arg-type]
    ratio = median_ratio(tput[0], tput[1])
    for label, side, values in (("without", free, tput[0]), ("with", capped, tput[1])):
        table.add_row(
            f"{side[0]['streams']} chat streams {label} max_tokens"
            + (f" ({side[0]['max_tokens']})" if side[0]["max_tokens"] else ""),
            f"{statistics.median(values):.1f} tok/s (peak running"
            f" {max(int(r['peak_running']) for r in side)} of {side[0]['streams']},"  # type: ignore[call-overload]
            f" {side[0]['tokens']} tokens)",
            f"{ratio:.2f}x" if label == "without" else "1.00x",
        )
    return {"chat_rounds": runs, "chat_no_max_tokens_vs_max_tokens": ratio}


CONSTRAINED_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "city": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 18, "maximum": 100},
        "risk": {"type": "integer", "minimum": 0, "maximum": 100},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 4},
        "summary": {"type": "string", "maxLength": 200},
    },
    "required": ["name", "city", "age", "risk", "tags", "summary"],
    "additionalProperties": False,
}
"""A small object schema with bounds, as a risk-scoring app would send."""

CONSTRAINED_RUNS: dict[str, tuple[dict[str, object] | None, float]] = {
    "unconstrained, greedy": (None, 0.0),
    "json_schema, greedy": (
        {"type": "json_schema", "json_schema": {"name": "customer", "schema": CONSTRAINED_SCHEMA}},
        0.0,
    ),
    "json_object, greedy": ({"type": "json_object"}, 0.0),
    "unconstrained, temperature 1": (None, 1.0),
    "json_schema, temperature 1": (
        {"type": "json_schema", "json_schema": {"name": "customer", "schema": CONSTRAINED_SCHEMA}},
        1.0,
    ),
}
"""Each round runs these one after another; the ratios pair each constrained run with
the unconstrained run of the same temperature in the same round."""


async def _decode_rate(
    client: httpx.AsyncClient,
    model: str,
    response_format: dict[str, object] | None,
    temperature: float,
    max_tokens: int,
    i: int,
) -> float:
    """One streamed chat answer's decode rate after its first token (tokens/s)."""
    body: dict[str, object] = {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": f"Bank customer number {i}: describe them as JSON with name, city,"
                " age, risk (0-100), tags and a one-sentence summary.",
            }
        ],
        "temperature": temperature,
        "seed": i,
        "max_tokens": max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if response_format is None:
        body["ignore_eos"] = True  # as long as max_tokens allows, like the other runs
    else:
        body["response_format"] = response_format
    tokens, first, last = 0, 0.0, 0.0
    async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if any(c["delta"].get("content") for c in chunk.get("choices", [])):
                last = time.perf_counter()
                first = first or last
    return (tokens - 1) / (last - first) if last > first else float("nan")


async def paired_constrained(
    url: str, model: str, max_tokens: int, rounds: int
) -> dict[str, list[float]]:
    """Per round, one streamed answer per entry of ``CONSTRAINED_RUNS``: decode tok/s."""
    out: dict[str, list[float]] = {name: [] for name in CONSTRAINED_RUNS}
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        for fmt, temperature in CONSTRAINED_RUNS.values():  # warm-up (the vocabulary build)
            await _decode_rate(client, model, fmt, temperature, 8, 0)
        for r in range(rounds):
            busy = await asyncio.to_thread(peer.wait_for_quiet, QUIET[0], QUIET[1])
            out.setdefault("cpu_busy_before", []).append(busy)
            for name, (fmt, temperature) in CONSTRAINED_RUNS.items():
                out[name].append(
                    await _decode_rate(client, model, fmt, temperature, max_tokens, r + 1)
                )
    return out


def constrained_rows(table: Table, rates: dict[str, list[float]]) -> dict[str, object]:
    """Add the constrained-vs-unconstrained rows to ``table``; their summary for the JSON."""
    ratios: dict[str, float] = {}
    for name, values in rates.items():
        if name not in CONSTRAINED_RUNS:
            continue  # the quiet gate's record
        base = "unconstrained, " + name.split(", ")[1]
        ratio = median_ratio(values, rates[base])
        if name != base:
            ratios[name] = ratio
        table.add_row(
            f"chat, 1 stream, {name}: decode after first token",
            f"{statistics.median(values):.1f} tok/s",
            f"{ratio:.2f}x",
        )
    return {"constrained_rounds": rates, "constrained_vs_unconstrained": ratios}


def _loads(before: list[float]) -> dict[str, object]:
    after = [round(x, 2) for x in os.getloadavg()]
    return {"cpus": os.cpu_count(), "load_average": {"before": before, "after": after}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--rounds", type=int, default=9, help="paired single-stream rounds")
    parser.add_argument(
        "--speedup-rounds", type=int, default=7, help="paired 1-stream/16-stream rounds"
    )
    parser.add_argument(
        "--no-batch-invariant",
        action="store_true",
        help="serve with llama.cpp's default kernels (engine.batch_invariant: false)",
    )
    parser.add_argument("--chat-streams", type=int, default=16)
    parser.add_argument(
        "--chat-tokens", type=int, default=64, help="tokens read from each chat stream"
    )
    parser.add_argument("--chat-rounds", type=int, default=3, help="paired chat rounds")
    parser.add_argument(
        "--only-chat", action="store_true", help="run only the chat streams without max_tokens"
    )
    parser.add_argument(
        "--constrained-rounds", type=int, default=7, help="paired constrained/unconstrained rounds"
    )
    parser.add_argument(
        "--only-constrained",
        action="store_true",
        help="run only the constrained-vs-unconstrained decoding rounds",
    )
    parser.add_argument(
        "--peer",
        action="store_true",
        help="run only luodi (gateway chain on) against llama-server (benchmarks/peer.py)",
    )
    peer.add_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("bench-results/serving.json"))
    args = parser.parse_args()
    if args.peer:
        peer.run_from(args)
        return
    global QUIET
    QUIET = (args.max_busy, args.quiet_timeout)
    load_before = [round(x, 2) for x in os.getloadavg()]

    env = {
        "LUODI_SERVER__LOG_LEVEL": "warning",
        # Loopback only; the gateway's own cost is measured by benchmarks/gateway_http.py.
        "LUODI_SECURITY__AUTH_ENABLED": "false",
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/bench.db",
        "LUODI_ENGINE__BATCH_INVARIANT": str(not args.no_batch_invariant).lower(),
    }
    with ServerProcess(env, ["--threads", str(args.threads), "--max-batch-size", "32"]) as server:
        model = httpx.get(f"{server.url}/v1/models").json()["data"][0]["id"]

        def chat_rounds() -> list[dict[str, object]]:
            return asyncio.run(
                paired_chat_rounds(
                    server.url, model, args.chat_streams, args.chat_tokens, args.chat_rounds
                )
            )

        def constrained() -> dict[str, list[float]]:
            return asyncio.run(
                paired_constrained(server.url, model, args.max_tokens, args.constrained_rounds)
            )

        def only(title: str, rows: Callable[[Table, Any], dict[str, object]], data: Any) -> None:
            """One part alone: its table printed, its summary written to ``args.out``."""
            table = Table(title=f"luodi {title} ({args.threads} threads)")
            for col in ("measure", "value", "ratio"):
                table.add_column(col, justify="right")
            summary = rows(table, data)
            console.print(table)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(
                json.dumps({"threads": args.threads, **_loads(load_before), **summary}, indent=2)
            )
            console.print(f"written to {args.out}")

        if args.only_constrained:
            only("constrained decoding", constrained_rows, constrained())
            return
        if args.only_chat:
            only("chat streams without max_tokens", chat_rows, chat_rounds())
            return
        paired = paired_single_stream(server.url, model, args.threads, args.max_tokens, args.rounds)
        levels = run(sweep(server.url, model, args.levels, args.max_tokens))
        speedups = run(paired_speedup(server.url, model, 16, args.max_tokens, args.speedup_rounds))
        cold, warm = asyncio.run(prefix_ttft(server.url, model))
        chat = chat_rounds()
        rates = constrained()

    raw_default = statistics.median(paired["raw_default"])
    raw_invariant = statistics.median(paired["raw_invariant"])
    http_decode = statistics.median(paired["http"])
    single_vs_raw = median_ratio(paired["http"], paired["raw_default"])
    single = float(levels[0]["throughput_tok_s"])  # type: ignore[arg-type]
    table = Table(title=f"luodi serving benchmark (default model, {args.threads} threads)")
    for col in ("measure", "value", "ratio"):
        table.add_column(col, justify="right")
    table.add_row(
        "raw llama.cpp decode, 1 stream (default kernels)", f"{raw_default:.1f} tok/s", "1.00x"
    )
    table.add_row(
        "raw llama.cpp decode, 1 stream (batch-invariant kernels)",
        f"{raw_invariant:.1f} tok/s",
        f"{median_ratio(paired['raw_invariant'], paired['raw_default']):.2f}x",
    )
    table.add_row(
        "luodi over HTTP, 1 stream, decode after first token",
        f"{http_decode:.1f} tok/s",
        f"{single_vs_raw:.2f}x",
    )
    for lvl in levels:
        tput = float(lvl["throughput_tok_s"])  # type: ignore[arg-type]
        ttft_ms = lvl["ttft_ms"]["p50"]  # type: ignore[index]
        itl = lvl["itl_ms"]  # type: ignore[index]
        table.add_row(
            f"luodi, {lvl['concurrency']} concurrent streams (all tokens / wall)",
            f"{tput:.1f} tok/s (TTFT p50 {ttft_ms:.0f} ms, ITL p50/p95/p99 "
            f"{itl['p50']:.0f}/{itl['p95']:.0f}/{itl['p99']:.0f} ms)",
            f"{tput / single:.2f}x",
        )
    table.add_row(
        f"16 streams / 1 stream, median of {len(speedups)} paired rounds",
        " ".join(f"{r:.2f}" for r in speedups),
        f"{statistics.median(speedups):.2f}x",
    )
    table.add_row("TTFT, 1,000-token system prompt cold", f"{cold * 1000:.0f} ms", "1.00x")
    table.add_row(
        "TTFT, same prompt warm in prefix cache",
        f"{warm * 1000:.0f} ms",
        f"{warm / cold:.2f}x ({(1 - warm / cold) * 100:.0f}% lower)",
    )
    chat_summary = chat_rows(table, chat)
    constrained_summary = constrained_rows(table, rates)
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "threads": args.threads,
                **_loads(load_before),
                "max_tokens": args.max_tokens,
                "batch_invariant": not args.no_batch_invariant,
                "paired_rounds": paired,
                "raw_decode_tok_s": raw_default,
                "raw_decode_invariant_tok_s": raw_invariant,
                "http_single_decode_tok_s": http_decode,
                "single_vs_raw": single_vs_raw,
                "levels": levels,
                "ttft_cold_s": cold,
                "ttft_warm_s": warm,
                "speedup_16_rounds": speedups,
                "speedup_16": statistics.median(speedups),
                **chat_summary,
                **constrained_summary,
            },
            indent=2,
        )
    )
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    main()
