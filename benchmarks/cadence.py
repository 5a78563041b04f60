"""Token cadence under load: inter-token latency spread against time to first token.

For each ``engine.step_slack`` setting (None: every step takes up to ``prefill_chunk``
prompt tokens beside its decodes, the old behaviour), starts ``luodi serve`` on the
default model and drives streaming completions at each concurrency level, every client
sending ``--requests`` requests one after another, so new prompts keep arriving while
others decode ("waves"). Reports per level: ITL p50/p95/p99 and p99/p50, TTFT p50/p95,
and aggregate output tokens/s. Settings run in interleaved rounds (each setting once
per round), so the machine's drift hits all alike; the figures are medians over rounds.

Two more columns say where a tail comes from. The server's ``luodi_engine_step_seconds``
histogram gives the mean time of decode-only steps and of mixed steps (decodes beside
new prompt tokens): mixed over decode is what arriving prompts cost running streams, the
part ``step_slack`` bounds. And a fixed workload (the same matrix products, timed
``--probe-s`` seconds just before each level, server idle) gives the machine's own
p99/p50: on a shared VM it can exceed the ITL target by itself.

    python benchmarks/cadence.py --out benchmarks/results/cadence.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from luodi.evaluation.load import LoadConfig, run, run_level
from luodi.evaluation.server_process import ServerProcess

console = Console()


def step_totals(url: str) -> dict[str, tuple[float, float]]:
    """(seconds, steps) per step kind so far, from the server's /metrics."""
    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        if family.name != "luodi_engine_step_seconds":
            continue
        for sample in family.samples:
            kind = sample.labels.get("kind", "")
            slot = totals.setdefault(kind, [0.0, 0.0])
            if sample.name.endswith("_sum"):
                slot[0] += sample.value
            elif sample.name.endswith("_count"):
                slot[1] += sample.value
    return {kind: (v[0], v[1]) for kind, v in totals.items()}


def step_means_ms(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """Mean step milliseconds per kind between two readings (NaN for a kind not seen)."""
    out = {}
    for kind, (seconds, count) in after.items():
        s0, c0 = before.get(kind, (0.0, 0.0))
        out[kind] = (seconds - s0) / (count - c0) * 1000 if count > c0 else float("nan")
    return out


def machine_probe(seconds: float) -> float:
    """p99/p50 of a fixed workload's iteration time: the machine's own jitter."""
    if seconds <= 0:
        return float("nan")
    rng = np.random.default_rng(0)
    a = rng.random((768, 768), dtype=np.float32)
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        started = time.perf_counter()
        for _ in range(8):
            a @ a
        times.append(time.perf_counter() - started)
    times.sort()
    return times[min(len(times) - 1, int(0.99 * len(times)))] / times[len(times) // 2]


def measure(
    setting: tuple[str, str], levels: list[int], args: argparse.Namespace
) -> dict[int, dict[str, float]]:
    slack, gc_freeze = setting
    env = {
        "LUODI_SERVER__LOG_LEVEL": "warning",
        "LUODI_SECURITY__AUTH_ENABLED": "false",
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/bench.db",
        "LUODI_ENGINE__STEP_SLACK": slack,
        "LUODI_SERVER__GC_FREEZE": gc_freeze,
    }
    flags = ["--threads", str(args.threads), "--max-batch-size", str(args.max_batch_size)]
    out: dict[int, dict[str, float]] = {}
    with ServerProcess(env, flags) as server:
        model = httpx.get(f"{server.url}/v1/models").json()["data"][0]["id"]
        cfg = LoadConfig(
            base_url=server.url,
            model=model,
            max_tokens=args.max_tokens,
            requests_per_client=args.requests,
        )
        # Warm up: the step-cost model learns this machine, as a serving engine does.
        run(run_level(cfg, 4))
        for level in levels:
            probe = machine_probe(args.probe_s)
            before = step_totals(server.url)
            result = run(run_level(cfg, level))
            steps = step_means_ms(before, step_totals(server.url))
            itl, ttft = result.itl_ms, result.ttft_ms
            out[level] = {
                "itl_p50_ms": itl["p50"],
                "itl_p95_ms": itl["p95"],
                "itl_p99_ms": itl["p99"],
                "itl_p99_over_p50": itl["p99"] / itl["p50"],
                "ttft_p50_ms": ttft["p50"],
                "ttft_p95_ms": ttft["p95"],
                "throughput_tok_s": result.throughput_tok_s,
                "errors": result.errors,
                "decode_step_ms": steps.get("decode", float("nan")),
                "mixed_step_ms": steps.get("mixed", float("nan")),
                "mixed_over_decode": steps.get("mixed", float("nan"))
                / steps.get("decode", float("nan")),
                "machine_probe_p99_over_p50": probe,
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--levels", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--slacks", nargs="+", default=["null", "0.1", "0.25", "0.5"])
    parser.add_argument(
        "--gc-freeze",
        nargs="+",
        default=["true"],
        help="server.gc_freeze values to cross with the slacks (true false: both)",
    )
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, default=3, help="requests per client")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--probe-s", type=float, default=30.0, help="fixed-workload probe before each level"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cadence.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    settings = {
        (slack if len(args.gc_freeze) == 1 else f"{slack} gc_freeze={gc}"): (slack, gc)
        for slack in args.slacks
        for gc in args.gc_freeze
    }
    runs: dict[str, list[dict[int, dict[str, float]]]] = {name: [] for name in settings}
    for _ in range(args.rounds):
        for name, setting in settings.items():
            runs[name].append(measure(setting, args.levels, args))
    summary: dict[str, dict[int, dict[str, float]]] = {}
    for slack, rounds in runs.items():
        summary[slack] = {
            level: {
                key: statistics.median(r[level][key] for r in rounds) for key in rounds[0][level]
            }
            for level in args.levels
        }
    table = Table(title=f"token cadence vs first token (default model, {args.threads} threads)")
    for col in (
        "step_slack (gc_freeze)",
        "streams",
        "ITL p50/p95/p99 ms",
        "p99/p50",
        "TTFT p50/p95 ms",
        "tok/s",
        "mixed/decode step",
        "probe p99/p50",
    ):
        table.add_column(col)
    for slack, levels in summary.items():
        for level, row in levels.items():
            table.add_row(
                slack.replace("null", "None"),
                str(level),
                f"{row['itl_p50_ms']:.0f}/{row['itl_p95_ms']:.0f}/{row['itl_p99_ms']:.0f}",
                f"{row['itl_p99_over_p50']:.2f}",
                f"{row['ttft_p50_ms']:.0f}/{row['ttft_p95_ms']:.0f}",
                f"{row['throughput_tok_s']:.1f}",
                f"{row['mixed_over_decode']:.2f}",
                f"{row['machine_probe_p99_over_p50']:.2f}",
            )
    console.print(table)
    result: dict[str, Any] = {
        "summary": summary,
        "rounds": runs,
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
