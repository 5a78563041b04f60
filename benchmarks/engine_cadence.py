"""Token cadence of the embedded engine alone: the cadence benchmark with no HTTP in the way.

``--clients`` in-process clients (64) each send ``--requests`` (3) requests of
``--max-tokens`` (64) tokens one after another, as ``cadence.py`` does over HTTP, with
the server's defaults (32 sequences at once, prefix cache and step bound on). Reports
per round the inter-token latency seen by the clients (p50, p99, p99/p50), and from the
engine's own step log: the median decode-only step, the median step carrying new prompt
tokens, and the share of decode-only steps slower than 1.3 times the median, with the
longest run of such steps in a row (a stretch of slow steps with no prompt in them
points at the machine, not the scheduler). Prints a table and writes JSON.

    python benchmarks/engine_cadence.py --rounds 3 --out benchmarks/results/engine-cadence.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from luodi.config import EngineSettings
from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.engine.llamacpp.model import select_kernels
from luodi.engine.observer import NullObserver, StepKind
from luodi.engine.types import GenerationRequest, SamplingParams

PROMPT = "Write a short story about a lighthouse keeper number {i} and the sea."


class StepLog(NullObserver):
    """Every step's kind and decode seconds, in order."""

    def __init__(self) -> None:
        self.steps: list[tuple[StepKind, float]] = []

    def on_step(
        self, batch_size: int, n_tokens: int, seconds: float, kind: StepKind = "decode"
    ) -> None:
        self.steps.append((kind, seconds))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_round(args: argparse.Namespace) -> dict[str, Any]:
    cache = Path(os.environ.get("LUODI_ENGINE__CACHE_DIR", Path.home() / ".cache" / "luodi"))
    log = StepLog()
    settings = EngineSettings(n_threads=args.threads, max_batch_size=32, cache_dir=cache)
    engine = LlamaCppEngine(settings, observer=log)
    await engine.start()
    gaps: list[float] = []

    async def request(i: int) -> None:
        params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens, ignore_eos=True)
        events = engine.generate(GenerationRequest(engine.tokenize(PROMPT.format(i=i)), params))
        last: float | None = None
        async for event in events:
            if not event.token_ids:
                continue
            now = time.perf_counter()
            if last is not None:
                gaps.append(now - last)
            last = now

    async def client(c: int) -> None:
        for r in range(args.requests):
            await request(c * 1000 + r)

    try:
        await asyncio.gather(*(client(10_000 + c) for c in range(4)))  # warm-up
        gaps.clear()
        log.steps.clear()
        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(args.clients)))
        wall = time.perf_counter() - started
    finally:
        await engine.stop()
    decode = [s for kind, s in log.steps if kind == "decode"]
    mixed = [s for kind, s in log.steps if kind == "mixed"]
    median_decode = statistics.median(decode)
    run = longest = slow = 0
    for kind, seconds in log.steps:
        if kind != "decode":
            continue
        if seconds > 1.3 * median_decode:
            slow += 1
            run += 1
            longest = max(longest, run)
        else:
            run = 0
    p50, p99 = percentile(gaps, 0.5), percentile(gaps, 0.99)
    return {
        "itl_p50_ms": p50 * 1000,
        "itl_p99_ms": p99 * 1000,
        "itl_p99_over_p50": p99 / p50,
        "tokens_per_s": (len(gaps) + args.clients * args.requests) / wall,
        "decode_step_ms": median_decode * 1000,
        "mixed_step_ms": statistics.median(mixed) * 1000 if mixed else float("nan"),
        "decode_steps": len(decode),
        "slow_decode_steps": slow,
        "longest_slow_run": longest,
    }


def report(rounds: list[dict[str, Any]]) -> str:
    lines = [
        f"{'round':>5} {'ITL p50/p99 ms':>15} {'p99/p50':>8} {'tok/s':>7} {'decode/mixed ms':>16}"
        f" {'slow decode steps':>18} {'longest run':>12}"
    ]
    for i, r in enumerate(rounds, start=1):
        # No mixed step: the clients fell into lockstep waves, prompts between them.
        mixed = "-" if math.isnan(r["mixed_step_ms"]) else f"{r['mixed_step_ms']:.0f}"
        lines.append(
            f"{i:>5} {r['itl_p50_ms']:>7.0f}/{r['itl_p99_ms']:<7.0f} {r['itl_p99_over_p50']:>8.2f}"
            f" {r['tokens_per_s']:>7.1f} {r['decode_step_ms']:>7.0f}/{mixed:<8}"
            f" {r['slow_decode_steps']:>8}/{r['decode_steps']:<9} {r['longest_slow_run']:>12}"
        )
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    select_kernels(batch_invariant=True)
    rounds = [await one_round(args) for _ in range(args.rounds)]
    return {
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "rounds": rounds,
        "load_avg": os.getloadavg(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/engine-cadence.json"))
    arguments = parser.parse_args()
    outcome = asyncio.run(main(arguments))
    print(report(outcome["rounds"]))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(outcome, indent=2) + "\n", encoding="utf-8")
