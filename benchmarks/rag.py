"""RAG benchmark with the real embedder on a real corpus: quality, ingest, query latency, chat.

Everything is measured with the configured embedder (``embeddings`` settings; the
bundled MiniLM by default), never a stand-in:

* quality: recall@5 and MRR of 13 labelled questions (zh + en) on tests/fixtures/knowledge;
* ingest: chunks/s of ``KnowledgeService.ingest`` (parse, chunk, embed, index) on the
  service-desk corpus of ``rag_corpus.py`` (made from benchmarks/corpora, ~126 tokens
  a chunk), every vector computed during the run;
* scale: a collection of N chunks of that corpus, then hybrid query latency (p50/p95 of
  ``KnowledgeService.search``: the query embedded by the model, BM25, vectors, fusion,
  the catalog) for real customer questions, with the embedding's share separated; the
  memory the indexes take and the first query after a restart. Chunk vectors come from
  ``rag_cache.py``: computed by the same model once (``--warm``) and kept on disk;
* chat (``--chat``): time to first token of grounded chat on ``luodi serve`` with the
  default model, alone and while a background ingest job runs (``?background=true``),
  at the job's default low priority and at normal priority.

    python benchmarks/rag.py --warm 100000            # once: embed the corpus (long)
    python benchmarks/rag.py --scales 10000,100000 --chat --out benchmarks/results/rag.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from rag_cache import CachedEmbedder, VectorCache  # noqa: E402
from rag_corpus import CORPORA, documents  # noqa: E402

from luodi.config.embeddings import EmbeddingSettings  # noqa: E402
from luodi.config.knowledge import KnowledgeSettings  # noqa: E402
from luodi.embedding import Embedder  # noqa: E402
from luodi.engine.embeddings import build_embedder  # noqa: E402
from luodi.evaluation.load import percentile  # noqa: E402
from luodi.evaluation.server_process import ServerProcess, create_key  # noqa: E402
from luodi.knowledge import KnowledgeService  # noqa: E402
from luodi.knowledge.chunking import Chunker  # noqa: E402
from luodi.knowledge.loaders import LOADERS, ParseLimits  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "knowledge"
CACHE = ROOT / "bench-results" / "rag-cache"
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
DOCS_PER_CALL = 16


def rss_mb() -> float:
    """This process's resident memory in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def load_avg() -> float:
    return os.getloadavg()[0]


def customer_questions(n: int, seed: int = 1) -> list[str]:
    """Real customer utterances (labelled set, zh + en) and the fixture questions."""
    lines = (CORPORA / "support" / "labelled.jsonl").read_text("utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines if line.strip()]
    texts += [q for q, _ in QUESTIONS]
    return random.Random(seed).sample(texts, min(n, len(texts)))


def chunk_inputs(
    embedder: Embedder, settings: KnowledgeSettings, docs: Iterable[tuple[str, bytes]]
) -> Iterator[list[str]]:
    """Per corpus document, the texts ingestion embeds (heading + chunk), in order."""
    chunker = Chunker(embedder.count_tokens, settings.chunk_tokens, settings.chunk_overlap)
    limits = ParseLimits.from_settings(settings)
    for _name, data in docs:
        chunks = chunker.chunk(LOADERS[".md"](data, limits))
        yield [f"{c.heading}\n{c.text}" if c.heading else c.text for c in chunks]


def warm(n_chunks: int, embedder: Embedder) -> None:
    """Embed the corpus's first ``n_chunks`` chunks (and a batch more) into the cache."""
    cache = VectorCache(CACHE / f"{embedder.name}-{embedder.dim}", embedder.dim)
    cached = CachedEmbedder(embedder, cache)
    done, started = 0, time.perf_counter()
    batch: list[str] = []
    for inputs in chunk_inputs(embedder, KnowledgeSettings(), documents(1_000_000)):
        batch += inputs
        done += len(inputs)
        if len(batch) >= 256 or done >= n_chunks + 2000:
            cached.embed(batch)
            batch = []
            cache.save()
            rate = cached.misses / max(time.perf_counter() - started, 1e-9)
            print(f"{done} chunks, {len(cache)} cached, {rate:.1f} new/s", flush=True)
        if done >= n_chunks + 2000:
            break
    cache.save()


def quality(embedder: Embedder, workdir: Path) -> dict[str, float]:
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
    service.close()
    return {
        "questions": len(QUESTIONS),
        "recall@5": hits5 / len(QUESTIONS),
        "mrr": rr / len(QUESTIONS),
    }


def ingest_rate(embedder: Embedder, workdir: Path, n_docs: int) -> dict[str, float]:
    """End-to-end ingest with every vector computed now (the corpus's later documents).

    Timed on a warmed service, as a server ingests (``luodi serve`` warms it before it
    serves: jieba's dictionary, the parser's fork server); the warm-up is timed apart.
    """
    settings = KnowledgeSettings(data_dir=workdir / "ingest", keep_originals=False)
    service = KnowledgeService(settings, embedder)
    service.create_collection("ingest")
    # Documents far from the cached prefix, so nothing here was embedded before.
    docs = list(documents(5000 + n_docs))[5000:]
    started = time.perf_counter()
    if hasattr(service, "warm"):  # absent before the warm-up existed (side-by-side runs)
        service.warm()
    warm_s = time.perf_counter() - started
    load = load_avg()
    start, cpu = time.perf_counter(), time.process_time()
    report = service.ingest("ingest", docs)
    seconds = time.perf_counter() - start
    cpu_s = time.process_time() - cpu
    service.close()
    pieces = embedder.count_tokens(
        [text for inputs in chunk_inputs(embedder, settings, docs) for text in inputs]
    )
    return {
        "documents": len(docs),
        "chunks": report.chunks,
        "word_pieces_per_chunk": round(sum(pieces) / max(len(pieces), 1), 1),
        "seconds": round(seconds, 1),
        "chunks_per_s": round(report.chunks / seconds, 1),
        "cpu_s": round(cpu_s, 1),
        "cores_busy": round(cpu_s / seconds, 2),
        "warm_up_s": round(warm_s, 2),
        "load_avg_1m": round(load, 2),
    }


def _deep_bytes(obj: Any) -> int:
    """Bytes of numpy arrays and Python containers/strings reachable from ``obj``'s fields."""
    import numpy as np

    seen: set[int] = set()
    total = 0
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, np.ndarray):
            total += item.nbytes
        elif isinstance(item, dict):
            total += sys.getsizeof(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += sys.getsizeof(item)
            stack.extend(item)
        elif isinstance(item, (str, bytes, int, float)):
            total += sys.getsizeof(item)
        elif hasattr(item, "__dict__") and type(item).__module__.startswith("luodi"):
            stack.extend(vars(item).values())
    return total


def index_bytes(service: KnowledgeService, collection: str) -> dict[str, float]:
    """Memory of a collection's two indexes, in MB: BM25 and the vector store (the float32
    matrix, its fp16 scan copy, ids and payloads). Segmenter and embedder excluded."""
    bm25 = service._bm25[collection]
    bm25_bytes = _deep_bytes({k: v for k, v in vars(bm25).items() if k != "_seg"})
    store = service._store._collections[collection]  # type: ignore[attr-defined]
    scan = store.scan.ntotal * store.scan.code_size
    vector_bytes = _deep_bytes({k: v for k, v in vars(store).items() if k != "scan"}) + scan
    return {"bm25_mb": round(bm25_bytes / 2**20, 1), "vectors_mb": round(vector_bytes / 2**20, 1)}


def _timed(run: Any, items: Sequence[Any]) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of ``run(item)`` for each item.

    CPU time is this process's (the search runs on one thread): on a shared machine it
    says what a query costs where wall-clock time also counts the wait for a core.
    """
    wall, cpu = [], []
    for item in items:
        t, c = time.perf_counter(), time.process_time()
        run(item)
        cpu.append((time.process_time() - c) * 1000)
        wall.append((time.perf_counter() - t) * 1000)
    return wall, cpu


def _ms(values: Sequence[float]) -> dict[str, float]:
    ordered = list(values)
    return {"p50": round(percentile(ordered, 50), 1), "p95": round(percentile(ordered, 95), 1)}


def scale(
    n_chunks: int, embedder: Embedder, workdir: Path, queries: Sequence[str], reuse: bool
) -> dict[str, Any]:
    """A collection of ``n_chunks`` corpus chunks (built once per ``workdir``), queried."""
    cache = VectorCache(CACHE / f"{embedder.name}-{embedder.dim}", embedder.dim)
    cached = CachedEmbedder(embedder, cache, reuse=reuse)
    folder = workdir / f"scale{n_chunks}"
    settings = KnowledgeSettings(data_dir=folder, keep_originals=False)
    built = folder / "built.json"
    if built.is_file():
        build = json.loads(built.read_text())
        service = KnowledgeService(settings, cached)
    else:
        service = KnowledgeService(settings, cached)
        service.create_collection("big")
        total, started = 0, time.perf_counter()
        docs = documents(1_000_000)
        while total < n_chunks:
            batch = [next(docs) for _ in range(DOCS_PER_CALL)]
            total += service.ingest("big", batch).chunks
        build = {
            "chunks": total,
            "index_build_chunks_per_s": round(total / (time.perf_counter() - started), 1),
            "vectors_own": cached.hits + cached.misses,
            "vectors_reused": cached.reused,
            "build_load_avg_1m": round(load_avg(), 2),
        }
        cache.save()
        service.search(["big"], "warm up", 5)  # the BM25 index is built and saved once
        service.close()
        built.write_text(json.dumps(build))
        service = KnowledgeService(settings, cached)
    # The first query after a (re)start: vectors and the saved BM25 index are loaded.
    wall, _ = _timed(lambda q: service.search(["big"], q, 5), queries[:1])
    cold_s = round(wall[0] / 1000, 2)
    memory = index_bytes(service, "big")
    cached.query_mode = True
    load = load_avg()
    total_ms, total_cpu = _timed(lambda q: service.search(["big"], q, 5), queries)
    embed_ms = cached.query_ms[-len(queries) :]
    retrieval_ms = [t - e for t, e in zip(total_ms, embed_ms, strict=True)]
    # The two indexes alone, as ``search`` calls them (50 candidates, the caller's filter).
    vectors = [cached.embed_query(q)[0] for q in queries]
    bm25 = service._bm25["big"]
    bm25_ms, _ = _timed(lambda q: bm25.search(q, 50), queries)
    store = service._store  # type: ignore[attr-defined]
    dense_ms, _ = _timed(lambda v: store.search("big", v, 50), vectors)
    load_after = load_avg()
    service.close()
    return {
        **build,
        **memory,
        "query_ms": _ms(total_ms),
        "query_cpu_ms": _ms(total_cpu),
        "query_embed_ms": _ms(embed_ms),
        "retrieval_ms": _ms(retrieval_ms),
        "bm25_ms": _ms(bm25_ms),
        "vectors_ms": _ms(dense_ms),
        "first_query_after_restart_s": cold_s,
        "load_avg_1m": [round(load, 2), round(load_after, 2)],
    }


def store_scan(n_rows: int, dim: int, queries: int = 50) -> dict[str, Any]:
    """The flat store alone at ``n_rows``: search p50/p95 with and without an ACL filter
    and its memory. Rows are random unit vectors: an exact scan reads every row whatever
    its values, so this is the vector half of a query at sizes the corpus cannot reach
    here (the BM25 half grows with the postings of the query's terms: see ``scale``)."""
    import numpy as np

    from luodi.knowledge.index.flat_store import FlatVectorStore
    from luodi.knowledge.types import Filter, Payload

    rng = np.random.default_rng(0)
    store = FlatVectorStore(None, dim)
    rss0 = rss_mb()
    step = 50_000
    for lo in range(0, n_rows, step):
        block = rng.standard_normal((min(step, n_rows - lo), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        ids = [f"c{i}" for i in range(lo, lo + len(block))]
        payloads = [
            Payload(f"d{i // 40}", frozenset({f"tenant:t{(i // 40) % 20}"}), {})
            for i in range(lo, lo + len(block))
        ]
        store.upsert("big", ids, block, payloads)
    rss1 = rss_mb()
    flt = Filter(frozenset({"tenant:t3", "tenant:t7", "*"}))
    out: dict[str, Any] = {"rows": n_rows, "rss_mb": round(rss1 - rss0, 1)}
    for name, f in (("no_filter", None), ("acl_filter", flt)):
        ms = []
        for _ in range(queries):
            q = rng.standard_normal(dim, dtype=np.float32)
            q /= np.linalg.norm(q)
            t = time.perf_counter()
            store.search("big", q, 50, f)
            ms.append((time.perf_counter() - t) * 1000)
        out[f"{name}_p50_ms"] = round(percentile(ms, 50), 2)
        out[f"{name}_p95_ms"] = round(percentile(ms, 95), 2)
    out["load_avg_1m"] = round(load_avg(), 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=int, default=0, help="Only embed N corpus chunks.")
    parser.add_argument("--scales", default="10000,100000", help="comma-separated chunk counts")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--ingest-docs", type=int, default=24, help="Documents (~30 chunks each).")
    parser.add_argument(
        "--upload", type=int, default=0, help="Documents to upload to luodi serve (0: none)."
    )
    parser.add_argument("--chat", type=int, default=0, help="Chat requests per phase (0: none).")
    parser.add_argument("--chat-docs", type=int, default=8, help="Documents a phase ingests.")
    parser.add_argument(
        "--reuse-vectors",
        action="store_true",
        help="Give chunks missing from the cache another corpus text's real vector.",
    )
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="Keep the scale collections here and reuse them next time (default: a temp dir).",
    )
    parser.add_argument(
        "--store-scan", default="", help="Only the flat store at these row counts, e.g. 1000000."
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rag.json")
    args = parser.parse_args()
    if args.store_scan:
        scans = [store_scan(int(n), 384) for n in args.store_scan.split(",")]
        for row in scans:
            print(json.dumps(row), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"store_scan": scans}, indent=2))
        return
    embedder = build_embedder(EmbeddingSettings())
    if args.warm:
        warm(args.warm, embedder)
        return
    result: dict[str, Any] = {"embedder": embedder.name, "cpus": os.cpu_count()}
    questions = customer_questions(args.queries)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_quality:
            result["quality"] = quality(embedder, work)
            print(f"quality: {result['quality']}", flush=True)
        if args.ingest_docs:
            result["ingest"] = ingest_rate(embedder, work, args.ingest_docs)
            print(f"ingest: {result['ingest']}", flush=True)
        result["scale"] = []
        for n in (int(x) for x in args.scales.split(",") if x):
            where = args.workdir or work
            result["scale"].append(scale(n, embedder, where, questions, args.reuse_vectors))
            print(f"scale: {result['scale'][-1]}", flush=True)
        if args.upload:
            result["upload"] = upload_rate(work, args.upload)
            print(f"upload: {result['upload']}", flush=True)
        if args.chat:
            result["chat"] = chat_under_ingest(work, args.chat, args.chat_docs)
            print(f"chat: {result['chat']}", flush=True)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False))


def print_table(result: dict[str, Any]) -> None:
    if "quality" in result:
        q = result["quality"]
        print(f"quality: recall@5={q['recall@5']:.3f} MRR={q['mrr']:.3f} ({q['questions']} q)")
    if "ingest" in result:
        i = result["ingest"]
        print(f"ingest: {i['chunks']} chunks in {i['seconds']} s = {i['chunks_per_s']} chunks/s")
    if result["scale"]:
        print(
            f"{'chunks':>8} {'p50 ms':>7} {'p95 ms':>7} {'cpu p50':>8} {'embed':>6} "
            f"{'bm25':>6} {'vectors':>8} {'BM25 MB':>8} {'vec MB':>7} {'restart s':>9} load"
        )
    for row in result["scale"]:
        print(
            f"{row['chunks']:>8} {row['query_ms']['p50']:>7} {row['query_ms']['p95']:>7} "
            f"{row['query_cpu_ms']['p50']:>8} {row['query_embed_ms']['p50']:>6} "
            f"{row['bm25_ms']['p50']:>6} {row['vectors_ms']['p50']:>8} {row['bm25_mb']:>8} "
            f"{row['vectors_mb']:>7} {row['first_query_after_restart_s']:>9} {row['load_avg_1m']}"
        )
    if "chat" in result:
        print(f"{'chat TTFT (ms)':<34} {'n':>4} {'p50':>7} {'p95':>7} {'ingest chunks/s':>16}")
        for name, row in result["chat"]["phases"].items():
            rate = row.get("ingest_chunks_per_s", "")
            print(f"{name:<34} {row['n']:>4} {row['p50']:>7} {row['p95']:>7} {rate!s:>16}")


async def _ttfts(http: Any, model: str, questions: Sequence[str]) -> list[float]:
    """Grounded chat requests, one at a time; each one's time to first token (ms)."""
    out: list[float] = []
    for n in range(len(questions)):
        body = {
            "model": model,
            "messages": [{"role": "user", "content": questions[n % len(questions)]}],
            "kb": ["faq"],
            "stream": True,
            "temperature": 0,
            "max_tokens": 16,
        }
        start = time.perf_counter()
        first = None
        async with http.stream("POST", "/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if first is None and '"content":"' in line:
                    first = time.perf_counter()
        out.append(((first or time.perf_counter()) - start) * 1000)
    return out


def _summary(ttfts: Sequence[float]) -> dict[str, Any]:
    return {
        "n": len(ttfts),
        "p50": round(percentile(list(ttfts), 50), 1),
        "p95": round(percentile(list(ttfts), 95), 1),
    }


async def _chat_phases(url: str, key: str, n: int, n_docs: int) -> dict[str, Any]:
    """Chat TTFT alone, during ingests as background jobs and during synchronous uploads,
    ``n`` chats each, in interleaved windows of 5. While a window of an ingest condition
    runs, the server keeps ingesting ``n_docs`` new documents at a time."""
    import httpx

    # Each condition asks its own questions: a question asked twice would find its
    # prompt in the engine's prefix cache the second time.
    questions = customer_questions(3 * n + 3, seed=2)
    warm, asked = questions[:3], questions[3:]
    docs = documents(1_000_000, seed=9)
    stop = asyncio.Event()
    phases: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=3600) as http:
        models = (await http.get("/v1/models")).json()["data"]
        chat_model = next(m["id"] for m in models if "minilm" not in m["id"])
        for kb in ("faq", "bulk"):
            (await http.post("/v1/knowledge", json={"name": kb})).raise_for_status()
        faq = (CORPORA / "support" / "faq.md").read_bytes()
        (
            await http.post("/v1/knowledge/faq/documents", files={"files": ("faq.md", faq)})
        ).raise_for_status()

        def batch() -> list[tuple[str, tuple[str, bytes]]]:
            return [
                ("files", (f"{name.replace('/', '-')}", data))
                for name, data in (next(docs) for _ in range(n_docs))
            ]

        async def as_jobs() -> int:
            chunks = 0
            while not stop.is_set():
                sent = await http.post(
                    "/v1/knowledge/bulk/documents?background=true", files=batch()
                )
                sent.raise_for_status()
                job_url = f"/v1/knowledge/bulk/jobs/{sent.json()['id']}"
                while True:
                    job = (await http.get(job_url)).json()
                    if job["state"] in ("done", "failed", "cancelled"):
                        break
                    await asyncio.sleep(0.25)
                chunks += job["chunks"]["done"]
            return chunks

        async def as_uploads() -> int:
            chunks = 0
            while not stop.is_set():
                sent = await http.post("/v1/knowledge/bulk/documents", files=batch())
                sent.raise_for_status()
                chunks += sent.json()["chunks"]
            return chunks

        async def during(ingest: Any, questions: Sequence[str]) -> tuple[list[float], int]:
            stop.clear()
            task = asyncio.create_task(ingest())
            ttfts = await _ttfts(http, chat_model, questions)
            stop.set()
            return ttfts, await task

        await _ttfts(http, chat_model, warm)  # warm: the system prompt, indexes
        # Short windows of each condition in turn, in a rotating order, so that all three
        # meet the same load from whatever else runs on the machine.
        samples: dict[str, list[float]] = {name: [] for name in CHAT_PHASES}
        chunks = dict.fromkeys(CHAT_PHASES, 0)
        seconds = dict.fromkeys(CHAT_PHASES, 0.0)
        ingests = dict(zip(CHAT_PHASES, (None, as_jobs, as_uploads), strict=True))
        window = 5
        for w, lo in enumerate(range(0, n, window)):
            order = CHAT_PHASES[w % 3 :] + CHAT_PHASES[: w % 3]
            for name in order:
                k = CHAT_PHASES.index(name)
                part = asked[k * n + lo : k * n + lo + window]
                ingest = ingests[name]
                started = time.perf_counter()
                if ingest is None:
                    samples[name] += await _ttfts(http, chat_model, part)
                else:
                    ttfts, done = await during(ingest, part)
                    samples[name] += ttfts
                    chunks[name] += done
                seconds[name] += time.perf_counter() - started
        for name in CHAT_PHASES:
            phases[name] = _summary(samples[name])
            if chunks[name]:
                phases[name]["ingest_chunks_per_s"] = round(chunks[name] / seconds[name], 1)
    return phases


CHAT_PHASES = (
    "alone",
    "during background jobs (nice 10)",
    "during synchronous uploads (nice 0)",
)


def chat_under_ingest(workdir: Path, n: int, n_docs: int) -> dict[str, Any]:
    """TTFT of grounded chat on ``luodi serve`` (default model), alone and during ingests."""
    env = {
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{workdir / 'chat.db'}",
        "LUODI_KNOWLEDGE__DATA_DIR": str(workdir / "chat-kb"),
    }
    key = create_key(env, "bench", "admin")
    load = load_avg()
    with ServerProcess(env) as server:
        phases = asyncio.run(_chat_phases(server.url, key, n, n_docs))
    return {"phases": phases, "load_avg_1m_at_start": round(load, 2), "docs_per_ingest": n_docs}


def upload_rate(workdir: Path, n_docs: int) -> dict[str, Any]:
    """Ingest through ``luodi serve`` started as users start it (the ``luodi`` script).

    The corpus's later documents are uploaded in requests of 8, synchronously, then
    the same number of others as one background job; chunks/s of each.
    """
    import httpx

    script = Path(sys.executable).parent / "luodi"
    env = {
        "LUODI_STORAGE__DATABASE_URL": f"sqlite:///{workdir / 'upload.db'}",
        "LUODI_KNOWLEDGE__DATA_DIR": str(workdir / "upload-kb"),
        "LUODI_SECURITY__AUTH_ENABLED": "false",
        "LUODI_SERVER__LOG_LEVEL": "warning",
    }
    docs = list(documents(7000 + 2 * n_docs))[7000:]
    files = [(name.replace("/", "-"), data) for name, data in docs]
    out: dict[str, Any] = {"documents": n_docs, "server": f"{script.name} serve"}
    with (
        ServerProcess(env, luodi=[str(script)]) as server,
        httpx.Client(base_url=server.url, timeout=3600) as http,
    ):
        http.post("/v1/knowledge", json={"name": "up"}).raise_for_status()
        load, chunks, start = load_avg(), 0, time.perf_counter()
        for lo in range(0, n_docs, 8):
            part = [("files", f) for f in files[lo : min(lo + 8, n_docs)]]
            sent = http.post("/v1/knowledge/up/documents", files=part)
            sent.raise_for_status()
            chunks += sent.json()["chunks"]
        seconds = time.perf_counter() - start
        out["uploads"] = {
            "chunks": chunks,
            "seconds": round(seconds, 1),
            "chunks_per_s": round(chunks / seconds, 1),
            "load_avg_1m": round(load, 2),
        }
        load, start = load_avg(), time.perf_counter()
        part = [("files", f) for f in files[n_docs:]]
        sent = http.post("/v1/knowledge/up/documents?background=true", files=part)
        sent.raise_for_status()
        while True:
            job = http.get(f"/v1/knowledge/up/jobs/{sent.json()['id']}").json()
            if job["state"] in ("done", "failed", "cancelled"):
                break
            time.sleep(0.1)
        seconds = time.perf_counter() - start
        out["job"] = {
            "chunks": job["chunks"]["done"],
            "seconds": round(seconds, 1),
            "chunks_per_s": round(job["chunks"]["done"] / seconds, 1),
            "state": job["state"],
            "load_avg_1m": round(load, 2),
        }
    return out


if __name__ == "__main__":
    main()
