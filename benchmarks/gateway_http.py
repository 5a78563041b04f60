"""Gateway overhead over HTTP, on both state backends.

Full chain: API key auth, RBAC, quotas, PII masking, audit. Off: auth and PII disabled
(the audit log always runs: a compliance requirement, not a knob). Each is run on the two
state backends a deployment chooses between:
  * ``sqlite``: SQLite (WAL) and in-process quota counters, the one-machine default;
  * ``postgres``: PostgreSQL and quota counters in Redis, what deploy/compose.yaml and
    deploy/k8s configure (a scratch database and key prefix, removed afterwards).
A per-key limit is set on both, so that every request really charges the quota store.
For each chain setting, one fresh ``luodi serve`` per backend on the default model, both
running at once, then:
  * latency: sequential 1-token completions, alternating between the two servers (which
    goes first alternates too), p50/p99; the pairs see the same machine, so the ratio
    holds up on a shared one even when absolute numbers do not;
  * throughput: 16 concurrent streams of 32 tokens, each server in turn.
Prints a table and writes JSON. Never a pass/fail test.

    python benchmarks/gateway_http.py --out bench-results/gateway_http.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from luodi.evaluation.load import LoadConfig, percentile, run, run_level
from luodi.evaluation.server_process import ServerProcess, create_key

BACKENDS = {"sqlite": "SQLite + in-process", "postgres": "PostgreSQL + Redis"}
CHAINS = {  # name: (auth and quotas on, PII on)
    "chain_off": (False, False),
    "keys_quota_audit": (True, False),
    "chain_on": (True, True),
}
COLUMNS = {"chain_off": "chain off", "keys_quota_audit": "keys+quota+audit", "chain_on": "full"}
STATS = {"p50_ms": "p50 latency", "p99_ms": "p99 latency", "tok_s_16": "16 streams"}
# High enough never to refuse a request here; set so the quota store is really asked.
LIMITS = {
    "LUODI_SECURITY__QUOTAS__PER_KEY__REQUESTS_PER_MINUTE": "1000000",
    "LUODI_SECURITY__QUOTAS__PER_KEY__TOKENS_PER_MINUTE": "100000000",
}


@contextmanager
def state_backend(backend: str, pg_admin: str, redis_url: str) -> Iterator[dict[str, str]]:
    """Settings of a fresh, empty state store of ``backend``; removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield {"LUODI_STORAGE__DATABASE_URL": f"sqlite:///{tmp}/bench.db"}
        return
    import psycopg
    import redis
    from psycopg.conninfo import conninfo_to_dict

    database = f"luodi_bench_{uuid.uuid4().hex[:12]}"
    prefix = f"luodi-bench:{uuid.uuid4().hex[:10]}"
    params = conninfo_to_dict(pg_admin)
    with psycopg.connect(pg_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    user = params.get("user", "postgres")
    host = f"{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}"
    try:
        yield {
            "LUODI_STORAGE__DATABASE_URL": f"postgresql+psycopg://{user}@{host}/{database}",
            "LUODI_SECURITY__QUOTAS__STORE": "redis",
            "LUODI_SECURITY__REDIS_URL": redis_url,
            "LUODI_SECURITY__QUOTAS__REDIS_PREFIX": prefix,
        }
    finally:
        with psycopg.connect(pg_admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        with redis.Redis.from_url(redis_url) as client:
            for key in client.scan_iter(f"{prefix}:*"):
                client.delete(key)


def server_env(store: dict[str, str], chain: bool, pii: bool) -> dict[str, str]:
    return {
        **store,
        **LIMITS,
        "LUODI_SERVER__LOG_LEVEL": "warning",
        "LUODI_SECURITY__AUTH_ENABLED": "true" if chain else "false",
        "LUODI_PRIVACY__ENABLED": "true" if pii else "false",
    }


@dataclass(frozen=True)
class Target:
    """One running server: where it is, the key to send, the model to ask."""

    url: str
    key: str | None
    model: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}


@contextmanager
def serve(store: dict[str, str], chain: bool, pii: bool) -> Iterator[Target]:
    env = server_env(store, chain, pii)
    key = create_key(env, "bench", "developer") if chain else None
    with ServerProcess(env) as server:
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        models = httpx.get(f"{server.url}/v1/models", headers=auth).json()
        yield Target(server.url, key, models["data"][0]["id"])


def paired_latency(targets: dict[str, Target], n: int) -> dict[str, list[float]]:
    """``n`` sequential 1-token completions on each target, alternating between them."""
    clients = {
        name: httpx.Client(base_url=t.url, headers=t.headers, timeout=60)
        for name, t in targets.items()
    }
    times: dict[str, list[float]] = {name: [] for name in targets}
    try:
        for i in range(n):
            order = list(targets) if i % 2 == 0 else list(reversed(targets))
            for name in order:
                body = {
                    "model": targets[name].model,
                    "prompt": f"Hi {i}",
                    "max_tokens": 1,
                    "temperature": 0,
                }
                start = time.perf_counter()
                clients[name].post("/v1/completions", json=body).raise_for_status()
                times[name].append(time.perf_counter() - start)
    finally:
        for client in clients.values():
            client.close()
    return times


def measure(
    stores: dict[str, dict[str, str]], chain: bool, pii: bool, n: int
) -> dict[str, dict[str, float]]:
    """Both backends' servers at once: paired latency, then each one's throughput."""
    with ExitStack() as stack:
        targets = {name: stack.enter_context(serve(s, chain, pii)) for name, s in stores.items()}
        paired_latency(targets, 5)  # warm
        lat = paired_latency(targets, n)
        results = {}
        for name, t in targets.items():
            cfg = LoadConfig(
                base_url=t.url, model=t.model, max_tokens=32, requests_per_client=2, api_key=t.key
            )
            level = run(run_level(cfg, 16))
            ms = [x * 1000 for x in lat[name]]
            results[name] = {
                "p50_ms": percentile(ms, 50),
                "p99_ms": percentile(ms, 99),
                "tok_s_16": level.throughput_tok_s,
                "errors": level.errors,
            }
    return results


def overhead_table(results: dict[str, dict[str, dict[str, float]]]) -> Table:
    table = Table(title="gateway overhead over HTTP (default model)")
    for col in ("backend", "", *COLUMNS.values(), "full - off"):
        table.add_column(col, justify="right")
    for backend, runs in results.items():
        off, on = runs["chain_off"], runs["chain_on"]
        for stat in ("p50_ms", "p99_ms"):
            table.add_row(
                BACKENDS[backend],
                f"1-token request {stat[:3]}",
                *(f"{runs[c][stat]:.1f} ms" for c in CHAINS),
                f"{on[stat] - off[stat]:+.2f} ms",
            )
        loss = 1 - on["tok_s_16"] / off["tok_s_16"]
        table.add_row(
            BACKENDS[backend],
            "16 streams",
            *(f"{runs[c]['tok_s_16']:.1f} tok/s" for c in CHAINS),
            f"{loss * 100:+.1f}% loss",
        )
    return table


def ratios(results: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """PostgreSQL + Redis over SQLite + in-process, per chain setting and statistic,
    and the p50 difference in milliseconds."""
    pg, lite = results["postgres"], results["sqlite"]
    return {
        chain: {
            **{stat: pg[chain][stat] / lite[chain][stat] for stat in STATS},
            "p50_diff_ms": pg[chain]["p50_ms"] - lite[chain]["p50_ms"],
        }
        for chain in CHAINS
    }


def ratio_table(by_chain: dict[str, dict[str, float]]) -> Table:
    table = Table(title=f"{BACKENDS['postgres']} / {BACKENDS['sqlite']}")
    for col in ("", *COLUMNS.values()):
        table.add_column(col, justify="right")
    for stat, label in STATS.items():
        table.add_row(label, *(f"{by_chain[c][stat]:.2f}x" for c in CHAINS))
    table.add_row("p50 difference", *(f"{by_chain[c]['p50_diff_ms']:+.1f} ms" for c in CHAINS))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--backends", nargs="+", choices=list(BACKENDS), default=list(BACKENDS))
    parser.add_argument(
        "--postgres",
        default="host=127.0.0.1 port=5432 user=postgres dbname=test",
        help="libpq connection string of a role that may create and drop databases",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--out", type=Path, default=Path("bench-results/gateway_http.json"))
    args = parser.parse_args()

    console = Console(width=120)
    results: dict[str, dict[str, dict[str, float]]] = {b: {} for b in args.backends}
    for chain, (auth, pii) in CHAINS.items():
        with ExitStack() as stack:
            stores = {
                b: stack.enter_context(state_backend(b, args.postgres, args.redis_url))
                for b in args.backends
            }
            for backend, done in measure(stores, auth, pii, args.requests).items():
                results[backend][chain] = done
                console.log(f"{BACKENDS[backend]}, {COLUMNS[chain]}: p50 {done['p50_ms']:.1f} ms")
    console.print(overhead_table(results))
    report: dict[str, object] = {"requests": args.requests, "backends": results}
    if set(BACKENDS) <= set(results):
        by_chain = ratios(results)
        console.print(ratio_table(by_chain))
        report["postgres_over_sqlite"] = by_chain
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
