"""luodi eval on the default model: capability items/s and accuracy, cost from a bench run.

Starts ``luodi serve`` on the default model (2 threads, auth off on loopback), then:
  1. scores each bundled task set (luodi/evaluation/tasks) by log-likelihood, with the
     echo scorer (lm-eval's request) and the forced-token scorer, and by constrained
     chat (generate mode): acc, acc_norm, items/s, requests sent; a second, cached
     pass shows what a resumed run costs;
  2. runs lm-eval's ``local-completions`` (remote tokenizer: luodi's /tokenize) on the
     English set against the same server, and prints items/s and accuracy beside luodi
     eval's echo scoring of the same items (the ratio is luodi / lm-eval);
  3. measures streaming throughput at concurrency 1 and 8 (``luodi bench``'s load
     generator) and prices it with the default price sheet (``luodi eval cost``);
  4. reads the model's memory figures from its GGUF header.

    python benchmarks/eval.py --out bench-results/eval.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import httpx

from luodi.cli.eval import gguf_tokenizer
from luodi.engine.llamacpp.default_model import default_model_path
from luodi.evaluation.cache import ResponseCache
from luodi.evaluation.capability import run_generate, run_loglikelihood
from luodi.evaluation.cost import CostModel, load_prices
from luodi.evaluation.endpoint import Endpoint
from luodi.evaluation.lm_eval_task import lm_eval_task_yaml
from luodi.evaluation.load import LoadConfig, run_level
from luodi.evaluation.scoring import ChatChooser, EchoScorer, ForcedTokenScorer
from luodi.evaluation.server_process import ServerProcess
from luodi.evaluation.tasks import load_task
from luodi.models.memory import model_memory

TASKS = Path(__file__).parents[1] / "luodi" / "evaluation" / "tasks"
CACHE = Path(os.environ.get("LUODI_ENGINE__CACHE_DIR", Path.home() / ".cache" / "luodi"))


async def capability(url: str, model: str, gguf: Path, concurrency: int) -> list[dict[str, object]]:
    tokenize = gguf_tokenizer(gguf)
    rows: list[dict[str, object]] = []
    scratch = Path(tempfile.mkdtemp())
    for name in ("general_en", "general_zh"):
        task = load_task(TASKS / f"{name}.jsonl")
        cache = ResponseCache(scratch / f"{name}.sqlite")
        for mode in (
            "loglikelihood (echo)",
            "loglikelihood (forced tokens)",
            "generate",
            "loglikelihood (echo, cached)",
        ):
            endpoint = Endpoint(url, model, concurrency=concurrency, cache=cache)
            started = time.perf_counter()
            if mode == "generate":
                result = await run_generate(task, ChatChooser(endpoint))
            else:
                scorer = (
                    ForcedTokenScorer(endpoint, tokenize)
                    if "forced" in mode
                    else EchoScorer(endpoint)
                )
                result = await run_loglikelihood(task, scorer, endpoint)
            wall = time.perf_counter() - started
            await endpoint.aclose()
            rows.append(
                {
                    "task": name,
                    "mode": mode,
                    "n": result.n,
                    "acc": result.acc,
                    "acc_norm": result.acc_norm,
                    "items_per_s": result.n / wall,
                    "requests_sent": result.requests_sent,
                    "wall_s": wall,
                }
            )
            print(json.dumps(rows[-1]))
        cache.close()
    return rows


def lm_eval_row(url: str, model: str, concurrency: int) -> dict[str, object]:
    """lm-eval's local-completions on general_en against ``url``: acc and items/s."""
    try:
        from lm_eval import simple_evaluate
        from lm_eval.tasks import TaskManager
    except ImportError as exc:
        return {"not_run": f"lm-eval is not installed ({exc})"}
    os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", OPENAI_API_KEY="none")
    include = Path(tempfile.mkdtemp())
    task = load_task(TASKS / "general_en.jsonl")
    (include / "luodi_general_en.yaml").write_text(
        lm_eval_task_yaml(task, "luodi_general_en"), encoding="utf-8"
    )
    started = time.perf_counter()
    out = simple_evaluate(
        model="local-completions",
        model_args=f"model={model},base_url={url}/v1/completions,tokenizer_backend=remote,"
        f"tokenized_requests=False,num_concurrent={concurrency},max_retries=1",
        tasks=["luodi_general_en"],
        task_manager=TaskManager(include_path=str(include)),
    )
    wall = time.perf_counter() - started
    n = int(out["n-samples"]["luodi_general_en"]["effective"])
    return {
        "task": "general_en",
        "mode": "lm-eval local-completions",
        "n": n,
        "acc": out["results"]["luodi_general_en"]["acc,none"],
        "items_per_s": n / wall,
        "wall_s": wall,
    }


async def bench(url: str, model: str) -> list[dict[str, object]]:
    cfg = LoadConfig(base_url=url, model=model, max_tokens=64, requests_per_client=2)
    await run_level(LoadConfig(base_url=url, model=model, max_tokens=8, requests_per_client=1), 1)
    return [(await run_level(cfg, level)).as_dict() for level in (1, 8)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("bench-results/eval.json"))
    args = parser.parse_args()
    gguf = default_model_path(CACHE)
    env = {
        "LUODI_SERVER__LOG_LEVEL": "warning",
        "LUODI_SECURITY__AUTH_ENABLED": "false",
        # The model is under test, not the gateway: PII masking would rewrite prompts (or
        # refuse token-id ones), and the Chinese set has false PERSON hits (熊猫, 汤圆).
        "LUODI_PRIVACY__ENABLED": "false",
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/bench.db",
        "LUODI_ENGINE__CACHE_DIR": str(CACHE),
    }
    load_before = [round(x, 2) for x in os.getloadavg()]
    with ServerProcess(env, ["--threads", str(args.threads)]) as server:
        model = httpx.get(f"{server.url}/v1/models").json()["data"][0]["id"]
        rows = asyncio.run(capability(server.url, model, gguf, args.concurrency))
        theirs = lm_eval_row(server.url, model, args.concurrency)
        print(json.dumps(theirs))
        levels = asyncio.run(bench(server.url, model))
    peak = max(float(lv["throughput_tok_s"]) for lv in levels)
    cost = CostModel(load_prices(), peak).summary([1e5, 1e6, 1e7, 1e8])
    memory = model_memory(gguf).to_json()
    result = {
        "model": model,
        "threads": args.threads,
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "capability": rows,
        "lm_eval_local_completions": theirs,
        "bench_levels": levels,
        "cost": cost,
        "memory": memory,
    }
    ours = next(
        r for r in rows if r["task"] == "general_en" and r["mode"] == "loglikelihood (echo)"
    )
    if "items_per_s" in theirs:
        ratio = float(ours["items_per_s"]) / float(theirs["items_per_s"])  # type: ignore[arg-type]
        print(
            f"general_en log-likelihood: luodi eval {ours['items_per_s']:.2f} items/s"
            f" (acc {ours['acc']:.3f}) vs lm-eval {theirs['items_per_s']:.2f} items/s"
            f" (acc {theirs['acc']:.3f}): {ratio:.2f}x"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(
        f"peak {peak:.1f} output tok/s; private per M output tokens"
        f" {cost['per_million_output_tokens']['private']:.2f} USD;"
        f" break-even {cost['break_even_output_tokens_per_day']}"
    )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
