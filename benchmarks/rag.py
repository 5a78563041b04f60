"""RAG benchmark: retrieval quality on a labelled FAQ set, ingestion throughput, query latency.

Quality (recall@5, MRR) uses the real MiniLM embedder on tests/fixtures/knowledge
(Apache-2.0, written for luodi). Scale runs fill a collection with N synthetic
chunks; ``--scale-embedder hash`` (default) uses a deterministic hashing embedder
so that 100k chunks fit a laptop run and the index itself is what is measured,
``minilm`` embeds them for real.

    python benchmarks/rag.py --scales 10000,100000 --out bench-results/rag.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from luodi.config.knowledge import KnowledgeSettings  # noqa: E402
from luodi.engine.embeddings import MiniLMEmbedder  # noqa: E402
from luodi.knowledge import KnowledgeService  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "knowledge"
QUESTIONS: list[tuple[str, str]] = [
    ("营业时间是几点到几点？", "faq_cn.md"),
    ("周六营业吗", "faq_cn.md"),
    ("手机银行转账限额是多少", "faq_cn.md"),
    ("银行卡丢了怎么办", "faq_cn.md"),
    ("开户需要带什么证件", "faq_cn.md"),
    ("How do I reset my online banking password?", "faq_en.txt"),
    ("savings account interest rate", "faq_en.txt"),
    ("Is there an annual fee on the credit card?", "faq_en.txt"),
    ("mortgage for energy efficient homes", "products.csv"),
    ("loan to pay tuition", "products.csv"),
    ("card without foreign transaction fees", "products.csv"),
    ("Where can I rent a safe deposit box?", "branches.html"),
    ("notice period for euro cash", "branches.html"),
]
WORDS = [
    "account",
    "loan",
    "card",
    "rate",
    "fee",
    "branch",
    "transfer",
    "deposit",
    "savings",
    "mortgage",
    "开户",
    "转账",
    "利率",
    "网点",
    "信用卡",
    "挂失",
    "理财",
    "存款",
    "贷款",
    "手续费",
]


class HashEmbedder:
    """Deterministic pseudo-embeddings: fast stand-in to fill large indexes."""

    name, dim, max_tokens = "hash", 384, 512

    def tokenize(self, text: str) -> list[int]:
        return list(range(len(text.split()) + len(text) // 4))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(self.tokenize(t)) for t in texts]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out


def quality(embedder: MiniLMEmbedder, workdir: Path) -> dict[str, float]:
    service = KnowledgeService(KnowledgeSettings(data_dir=workdir / "quality"), embedder)
    service.create_collection("faq")
    files = [(p.name, p.read_bytes()) for p in sorted(FIXTURES.iterdir()) if p.name != "LICENSE.md"]
    service.ingest("faq", files)
    hits5, rr = 0, 0.0
    for query, doc in QUESTIONS:
        names = [h.document for h in service.search(["faq"], query, 5)]
        if doc in names:
            hits5 += 1
            rr += 1.0 / (names.index(doc) + 1)
    return {
        "questions": len(QUESTIONS),
        "recall@5": hits5 / len(QUESTIONS),
        "mrr": rr / len(QUESTIONS),
    }


def scale(n_chunks: int, embedder: object, workdir: Path, queries: int) -> dict[str, float]:
    rng = random.Random(n_chunks)
    settings = KnowledgeSettings(data_dir=workdir / f"scale{n_chunks}", keep_originals=False)
    service = KnowledgeService(settings, embedder)  # type: ignore[arg-type]
    service.create_collection("big")
    per_doc = 100  # CSV rows: one chunk each
    t0 = time.perf_counter()
    for d in range(n_chunks // per_doc):
        rows = ["id,text"] + [
            f"{d}-{r}," + " ".join(rng.choice(WORDS) for _ in range(12)) for r in range(per_doc)
        ]
        service.ingest("big", [(f"doc{d}.csv", "\n".join(rows).encode())])
    ingest_s = time.perf_counter() - t0
    latencies = []
    for _ in range(queries):
        q = " ".join(rng.choice(WORDS) for _ in range(4))
        t = time.perf_counter()
        service.search(["big"], q, 5)
        latencies.append((time.perf_counter() - t) * 1000)
    latencies.sort()
    service.close()
    return {
        "chunks": n_chunks,
        "ingest_chunks_per_s": n_chunks / ingest_s,
        "query_p50_ms": statistics.median(latencies),
        "query_p95_ms": latencies[int(0.95 * (len(latencies) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="10000,100000", help="comma-separated chunk counts")
    parser.add_argument("--scale-embedder", choices=["hash", "minilm"], default="hash")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "rag.json")
    args = parser.parse_args()
    minilm = MiniLMEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result: dict[str, object] = {"quality": quality(minilm, work)}
        embedder = minilm if args.scale_embedder == "minilm" else HashEmbedder()
        result["scale_embedder"] = args.scale_embedder
        result["scale"] = [
            scale(int(n), embedder, work, args.queries) for n in args.scales.split(",") if n
        ]
    q = result["quality"]
    print(f"quality: recall@5={q['recall@5']:.3f} MRR={q['mrr']:.3f} ({q['questions']} questions)")  # type: ignore[index]
    print(f"{'chunks':>8} {'ingest chunks/s':>16} {'p50 ms':>8} {'p95 ms':>8}")
    for row in result["scale"]:  # type: ignore[attr-defined]
        print(
            f"{row['chunks']:>8} {row['ingest_chunks_per_s']:>16.1f} "
            f"{row['query_p50_ms']:>8.1f} {row['query_p95_ms']:>8.1f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
