"""The shop assistant under load: multi-turn conversations at 1, 4 and 16 concurrent users.

One ``luodi serve`` on the default model (auth on) serves ``support/shop``
(benchmarks/corpora/support/shop.yaml) over its FAQ knowledge base; a stand-in for the
shop's order system answers the webhook in this process. Every simulated user runs
the same four-turn conversation in its own session:

  1. 退款多久到账                     a knowledge answer: the model streams, with citations
  2. how long does a refund take     the same in English
  3. 我的快递到哪了                   a slot question (no model)
  4. 订单号 2024112300001234          the webhook is called, its answer shown (no model)

Then each question of unanswerable.jsonl (in the shop's domain, not in its FAQ) and of
answerable.jsonl (answered by the FAQ) is asked once, and the rate of "I don't know"
answers (the assistant's refusal, or the model saying so) is reported for each: an
invented answer to the first and a refusal of the second are the failures.

Before each turn the user also asks ``/v1/apps/support/shop/classify`` for the intent of
the same text (the layered recognizer alone). Per turn kind it reports intent latency,
time to first token (p50/p95) and end-to-end time. Prints a table and writes JSON.

    python benchmarks/support.py --users 1 4 16 --out benchmarks/results/support.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from rich.console import Console
from rich.table import Table

from luodi.evaluation.load import percentile
from luodi.evaluation.server_process import ServerProcess, create_key

CORPUS = Path(__file__).parent / "corpora" / "support"
TURNS = [
    ("answer_zh", "退款多久到账"),
    ("answer_en", "how long does a refund take"),
    ("slot_ask", "我的快递到哪了"),
    ("webhook", "订单号 2024112300001234"),
]


@dataclass
class Samples:
    """Timings of one turn kind, in milliseconds."""

    intent: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    paths: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    """503 answers (the engine's queue or KV cache full), with their messages."""

    def summary(self) -> dict[str, float]:
        return {
            "n": len(self.e2e),
            "refused_503": len(self.refused),
            "intent_p50_ms": round(percentile(self.intent, 50), 1),
            "intent_p95_ms": round(percentile(self.intent, 95), 1),
            "ttft_p50_ms": round(percentile(self.ttft, 50), 1),
            "ttft_p95_ms": round(percentile(self.ttft, 95), 1),
            "e2e_p50_ms": round(percentile(self.e2e, 50), 1),
            "e2e_p95_ms": round(percentile(self.e2e, 95), 1),
        }


def backoffice(port: int) -> uvicorn.Server:
    """The shop's order system, stood in for: answers every lookup at once."""
    app = FastAPI()

    @app.post("/orders")
    async def order(body: dict[str, Any]) -> dict[str, Any]:
        return {"status": "shipped", "detail": "SF Express, arriving tomorrow"}

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


async def turn(
    http: httpx.AsyncClient, conversation: str, kind: str, text: str, samples: dict[str, Samples]
) -> None:
    """Classify ``text``, then say it in ``conversation`` (streamed), timing both."""
    start = time.perf_counter()
    classified = await http.post("/v1/apps/support/shop/classify", json={"text": text})
    classified.raise_for_status()
    got = samples.setdefault(kind, Samples())
    got.intent.append((time.perf_counter() - start) * 1000)
    path = classified.json()["path"]
    got.paths[path] = got.paths.get(path, 0) + 1
    body = {
        "model": "support/shop",
        "messages": [{"role": "user", "content": text}],
        "stream": True,
        "temperature": 0,
        "max_tokens": 48,
    }
    start = time.perf_counter()
    first: float | None = None
    async with http.stream(
        "POST", "/v1/chat/completions", json=body, headers={"X-Luodi-Conversation": conversation}
    ) as response:
        if response.status_code == 503:  # the engine is full: counted, not timed
            await response.aread()
            got.refused.append(response.text[:200])
            return
        response.raise_for_status()
        async for line in response.aiter_lines():
            if first is None and line.startswith("data: ") and '"content":"' in line:
                chunk = json.loads(line[6:])
                if any(c["delta"].get("content") for c in chunk["choices"]):
                    first = time.perf_counter()
    end = time.perf_counter()
    got.ttft.append(((first or end) - start) * 1000)
    got.e2e.append((end - start) * 1000)


async def user(http: httpx.AsyncClient, rounds: int, samples: dict[str, Samples]) -> None:
    for _ in range(rounds):
        conversation = uuid.uuid4().hex
        for kind, text in TURNS:
            await turn(http, conversation, kind, text, samples)


async def level(url: str, key: str, users: int, rounds: int) -> dict[str, Samples]:
    samples: dict[str, Samples] = {}
    limits = httpx.Limits(max_connections=users + 4)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600, limits=limits
    ) as http:
        await asyncio.gather(*(user(http, rounds, samples) for _ in range(users)))
    return samples


async def seed(url: str, key: str) -> None:
    """The FAQ knowledge base, and one warm-up conversation (indexes built, prefixes cached)."""
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600
    ) as http:
        made = await http.post("/v1/knowledge", json={"name": "faq"})
        assert made.status_code in (200, 201, 409), made.text
        faq = (CORPUS / "faq.md").read_bytes()
        files = {"files": ("faq.md", faq, "text/markdown")}
        sent = await http.post("/v1/knowledge/faq/documents", files=files)
        sent.raise_for_status()
        (await http.post("/admin/support/reload")).raise_for_status()
    await level(url, key, 1, 1)


REFUSALS = (
    "不知道",
    "无法",
    "没有相关",
    "不确定",
    "don't know",
    "do not know",
    "not sure",
    "cannot",
)


async def ask_all(url: str, key: str, name: str) -> dict[str, Any]:
    """Ask each question of ``<name>.jsonl`` once; count the answers that say "I don't know"."""
    questions = [
        json.loads(line)["text"]
        for line in (CORPUS / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    refused, answers = 0, []
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600
    ) as http:
        for question in questions:
            body = {
                "model": "support/shop",
                "messages": [{"role": "user", "content": question}],
                "temperature": 0,
                "max_tokens": 48,
            }
            conversation = {"X-Luodi-Conversation": uuid.uuid4().hex}
            response = await http.post("/v1/chat/completions", json=body, headers=conversation)
            response.raise_for_status()
            text = response.json()["choices"][0]["message"]["content"]
            said_so = any(r in text.lower() for r in REFUSALS)
            refused += said_so
            answers.append({"question": question, "answer": text, "refused": said_so})
    return {
        "questions": len(questions),
        "refusal_rate": round(refused / len(questions), 3),
        "answers": answers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=2, help="Conversations per user.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/support.json"))
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="luodi-support-bench-"))
    try:
        stand_in = backoffice(port := 9000 + os.getpid() % 1000)
        assistants = scratch / "assistants"
        assistants.mkdir()
        shop = (CORPUS / "shop.yaml").read_text(encoding="utf-8")
        (assistants / "shop.yaml").write_text(
            shop.replace("http://127.0.0.1:9000", f"http://127.0.0.1:{port}"), encoding="utf-8"
        )
        env = {
            "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{scratch / 'luodi.db'}",
            "LUODI_KNOWLEDGE__DATA_DIR": str(scratch / "kb"),
            "LUODI_SUPPORT__ASSISTANTS_DIR": str(assistants),
        }
        key = create_key(env, "bench", "admin")
        results: dict[str, Any] = {}
        with ServerProcess(env) as server:
            asyncio.run(seed(server.url, key))
            for name in ("unanswerable", "answerable"):
                results[name] = asyncio.run(ask_all(server.url, key, name))
                print(f"{name}: {results[name]['refusal_rate']:.0%} refused", flush=True)
            for users in args.users:
                started = time.perf_counter()
                samples = asyncio.run(level(server.url, key, users, args.rounds))
                results[str(users)] = {
                    "seconds": round(time.perf_counter() - started, 1),
                    # The machine is shared: its load says how much CPU the run had.
                    "load_average_1m": round(os.getloadavg()[0], 2),
                    "turns": {
                        k: {**s.summary(), "paths": s.paths, "refusals": s.refused[:3]}
                        for k, s in samples.items()
                    },
                }
                print(f"{users} users: {json.dumps(results[str(users)])}", flush=True)
        stand_in.should_exit = True
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = Table(title="support/shop: per turn kind (ms)")
    for column in ("users", "turn", "intent p50", "intent p95", "TTFT p50", "TTFT p95", "e2e p50"):
        table.add_column(column)
    for users, run in results.items():
        if users in ("unanswerable", "answerable"):
            continue
        for kind, s in run["turns"].items():
            table.add_row(
                users,
                kind,
                *(
                    str(s[k])
                    for k in ("intent_p50_ms", "intent_p95_ms", "ttft_p50_ms", "ttft_p95_ms")
                ),
                str(s["e2e_p50_ms"]),
            )
    Console().print(table)
    print(
        f"refused: {results['unanswerable']['refusal_rate']:.0%} of questions the FAQ cannot"
        f" answer, {results['answerable']['refusal_rate']:.0%} of those it can (false refusals)"
    )
    results["load_average"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
