"""Gateway overhead over HTTP: the full chain against the same server with it off.

Full chain: API key auth, RBAC, quotas, PII masking, audit. Off: auth and PII disabled
(the audit log always runs: a compliance requirement, not a knob). For each, a fresh
``luodi serve`` on the default model, then:
  * latency: sequential 1-token completions, p50/p99 (the difference is the overhead);
  * throughput: 16 concurrent streams of 32 tokens.
Prints a table and writes JSON. Never a pass/fail test.

    python benchmarks/gateway_http.py --out bench-results/gateway_http.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from luodi.evaluation.load import LoadConfig, percentile, run, run_level
from luodi.evaluation.server_process import ServerProcess, create_key


def server_env(chain: bool, pii: bool) -> dict[str, str]:
    return {
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/bench.db",
        "LUODI_SERVER__LOG_LEVEL": "warning",
        "LUODI_SECURITY__AUTH_ENABLED": "true" if chain else "false",
        "LUODI_PRIVACY__ENABLED": "true" if pii else "false",
    }


def latency(url: str, key: str | None, model: str, n: int) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    times = []
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        for i in range(n):
            start = time.perf_counter()
            resp = http.post(
                "/v1/completions",
                json={"model": model, "prompt": f"Hi {i}", "max_tokens": 1, "temperature": 0},
            )
            resp.raise_for_status()
            times.append(time.perf_counter() - start)
    return times


def measure(chain: bool, pii: bool, n: int) -> dict[str, float]:
    env = server_env(chain, pii)
    key = create_key(env, "bench", "developer") if chain else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with ServerProcess(env) as server:
        model = httpx.get(f"{server.url}/v1/models", headers=headers).json()["data"][0]["id"]
        latency(server.url, key, model, 5)  # warm
        lat = latency(server.url, key, model, n)
        cfg = LoadConfig(
            base_url=server.url, model=model, max_tokens=32, requests_per_client=2, api_key=key
        )
        level = run(run_level(cfg, 16))
    return {
        "p50_ms": percentile([t * 1000 for t in lat], 50),
        "p99_ms": percentile([t * 1000 for t in lat], 99),
        "tok_s_16": level.throughput_tok_s,
        "errors": level.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench-results/gateway_http.json"))
    args = parser.parse_args()
    off = measure(False, False, args.requests)
    keys_only = measure(True, False, args.requests)
    on = measure(True, True, args.requests)
    table = Table(title="gateway overhead over HTTP (default model)")
    for col in ("", "chain off", "keys+quota+audit", "full chain (+PII)", "full - off"):
        table.add_column(col, justify="right")
    for stat in ("p50_ms", "p99_ms"):
        table.add_row(
            f"1-token request {stat[:3]}",
            *(f"{r[stat]:.1f} ms" for r in (off, keys_only, on)),
            f"{on[stat] - off[stat]:+.2f} ms",
        )
    loss = 1 - on["tok_s_16"] / off["tok_s_16"]
    table.add_row(
        "16 streams throughput",
        *(f"{r['tok_s_16']:.1f} tok/s" for r in (off, keys_only, on)),
        f"{loss * 100:+.1f}% loss",
    )
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "chain_off": off,
                "keys_quota_audit": keys_only,
                "chain_on": on,
                "throughput_loss": loss,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
