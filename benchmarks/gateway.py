"""Gateway overhead per request: authenticate + authorize + admit + usage + audit.

In-process for now (the lead extends it to HTTP): each simulated request runs the
whole chain around a fake engine call of ``--request-ms``, at ``--concurrency``
streams, and is compared with the same loop with the chain off. Prints a table and
writes JSON.

    python benchmarks/gateway.py --requests 2000 --concurrency 16 --out bench-results/gw.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from luodi.config.security import LimitSettings, QuotaSettings, SecuritySettings
from luodi.config.storage import StorageSettings
from luodi.security import AuditEvent, Gateway

STAGES = ("authenticate", "authorize", "admit", "record_usage", "audit", "total")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="luodi-bench-")
    url = args.database_url or f"sqlite:///{tmp}/bench.db"
    limits = LimitSettings(requests_per_minute=10**9, tokens_per_minute=10**12)
    security = SecuritySettings(quotas=QuotaSettings(per_key=limits, per_tenant=limits))
    storage = StorageSettings(
        database_url=url, postgres_synchronous_commit=args.pg_synchronous_commit
    )
    gw = await Gateway.create(security, storage)
    gw.directory.create_user("bench", roles=["developer"])
    header = f"Bearer {gw.keys.create('bench').secret}"
    timings: dict[str, list[float]] = {s: [] for s in STAGES}
    remaining = args.requests

    async def one_request(chain: bool) -> None:
        if not chain:
            await asyncio.sleep(args.request_ms / 1000)
            return
        t0 = time.perf_counter()
        principal = await gw.authenticate(header, "127.0.0.1")
        t1 = time.perf_counter()
        gw.authorize(principal, "model:qwen3:invoke")
        t2 = time.perf_counter()
        await gw.admit(principal, tokens=100)
        t3 = time.perf_counter()
        await asyncio.sleep(args.request_ms / 1000)  # the engine's work
        t4 = time.perf_counter()
        await gw.record_usage(principal, tokens=150)
        t5 = time.perf_counter()
        await gw.audit(
            AuditEvent.for_request(
                principal, endpoint="/v1/chat/completions", prompt="p" * 200, response="r" * 400
            )
        )
        t6 = time.perf_counter()
        for stage, value in zip(
            STAGES,
            (t1 - t0, t2 - t1, t3 - t2, t5 - t4, t6 - t5, (t6 - t0) - (t4 - t3)),
            strict=True,
        ):
            timings[stage].append(value * 1000)

    async def worker(chain: bool) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one_request(chain)

    results: dict[str, Any] = {}
    for chain in (False, True):
        remaining = args.requests
        start = time.perf_counter()
        await asyncio.gather(*(worker(chain) for _ in range(args.concurrency)))
        results["with_chain" if chain else "chain_off"] = args.requests / (
            time.perf_counter() - start
        )
    await gw.close()
    off, on = results["chain_off"], results["with_chain"]
    return {
        "database": url.split(":")[0],
        "requests": args.requests,
        "concurrency": args.concurrency,
        "request_ms": args.request_ms,
        "stages_ms": {
            s: {
                "p50": statistics.median(v),
                "p99": pct(v, 0.99),
                "mean": statistics.fmean(v),
            }
            for s, v in timings.items()
        },
        "throughput_rps": {"chain_off": off, "with_chain": on},
        "throughput_loss_pct": 100 * (off - on) / off,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--request-ms", type=float, default=50.0, help="simulated engine time")
    parser.add_argument("--database-url", default=None, help="default: a temp SQLite file")
    parser.add_argument("--pg-synchronous-commit", choices=["on", "off"], default="on")
    parser.add_argument("--out", type=Path, default=Path("bench-results/gateway.json"))
    args = parser.parse_args()
    report = asyncio.run(run(args))
    print(
        f"gateway overhead, {report['requests']} requests, {report['concurrency']} streams, "
        f"{report['database']}"
    )
    print(f"{'stage':<14}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for stage, row in report["stages_ms"].items():
        print(f"{stage:<14}{row['p50']:>10.3f}{row['p99']:>10.3f}{row['mean']:>10.3f}")
    tp = report["throughput_rps"]
    print(
        f"throughput: chain off {tp['chain_off']:.1f} req/s, with chain {tp['with_chain']:.1f} "
        f"req/s, loss {report['throughput_loss_pct']:.2f}%"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
