"""The numpy indexes rank exactly as the pure-Python scorer and brute-force search did."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from bm25_reference import ReferenceBM25
from kb_factories import FIXTURES

from luodi.knowledge.index.bm25 import BM25Index, Segmenter
from luodi.knowledge.index.flat_store import FlatVectorStore
from luodi.knowledge.types import Filter, Payload

SUPPORT = Path(__file__).parents[2] / "benchmarks" / "corpora" / "support"
QUERIES = [
    "营业时间是几点到几点？",
    "手机银行转账限额是多少",
    "退款多久到账",
    "我的快递到哪了",
    "How do I reset my online banking password?",
    "savings account interest rate",
    "where is my order",
    "refund to my credit card",
    "信用卡 annual fee",
    "不存在的词 zyxwv",
]
TENANTS = ["tenant:a", "tenant:b", "role:credit", "*"]


def passages() -> list[str]:
    """Short real passages: the fixture corpus's lines and the support set's utterances."""
    lines = [
        line.strip()
        for path in sorted(FIXTURES.iterdir())
        if path.suffix in {".md", ".txt", ".csv", ".html"} and path.name != "LICENSE.md"
        for line in path.read_text(encoding="utf-8").splitlines()
        if len(line.strip()) > 3
    ]
    lines += [line.strip() for line in (SUPPORT / "faq.md").read_text("utf-8").splitlines() if line]
    lines += [
        json.loads(line)["text"]
        for line in (SUPPORT / "labelled.jsonl").read_text("utf-8").splitlines()
        if line.strip()
    ]
    # Pairs of them: longer passages, and enough rows for the tail to be compacted.
    return lines + [f"{a} {lines[(i * 7 + 3) % len(lines)]}" for i, a in enumerate(lines)]


def payload(rng: random.Random, n: int) -> Payload:
    return Payload(f"d{n // 7}", frozenset(rng.sample(TENANTS, 2)), {"lang": rng.choice("xy")})


def assert_same_ranking(got: list[tuple[str, float]], expected: dict[str, float], k: int) -> None:
    """Same scores in the same order; ids may differ only among equal scores."""
    best = sorted(expected.values(), reverse=True)[:k]
    assert [s for _, s in got] == pytest.approx(best, rel=1e-6)
    for chunk_id, score in got:
        assert expected[chunk_id] == pytest.approx(score, rel=1e-6)


def test_bm25_scores_match_the_reference_through_adds_removals_and_compactions() -> None:
    rng = random.Random(7)
    seg = Segmenter()
    index, reference = BM25Index(seg), ReferenceBM25(seg)
    texts = passages()
    assert len(texts) > 1100  # enough rows that the tail is compacted at least once
    payloads = {}

    def check() -> None:
        for query in QUERIES:
            for flt in (None, Filter(frozenset({"tenant:a"})), Filter(None, {"lang": "x"})):
                assert_same_ranking(index.search(query, 20, flt), reference.scores(query, flt), 20)

    for n, text in enumerate(texts):
        payloads[f"c{n}"] = payload(rng, n)
        index.add([(f"c{n}", text, payloads[f"c{n}"])])
        reference.add(f"c{n}", text, payloads[f"c{n}"])
    check()
    gone = rng.sample(sorted(payloads), len(payloads) // 2)  # compacts the dead rows
    index.remove(gone)
    reference.remove(gone)
    check()
    for chunk_id in gone[:200]:  # back, with other text and tags
        text = rng.choice(texts)
        new = payload(rng, 0)
        index.add([(chunk_id, text, new)])
        reference.add(chunk_id, text, new)
    check()
    assert len(index) == len(payloads) - len(gone) + 200


def test_bm25_tokenizes_chinese_into_words_and_sub_words() -> None:
    index = BM25Index(Segmenter())
    index.add(
        [
            ("zh", "中华人民共和国的银行营业时间", Payload("d", frozenset(), {})),
            ("en", "bank opening hours", Payload("d", frozenset(), {})),
        ]
    )
    assert [c for c, _ in index.search("共和国", 5)] == ["zh"]
    assert [c for c, _ in index.search("营业时间", 5)] == ["zh"]
    assert index.search("银行 hours", 5)[0][0] in {"zh", "en"}
    assert index.search("no such words", 5) == []


def test_flat_store_ranks_exactly_as_brute_force_with_filters_and_deletions(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    dim, n = 64, 5000
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"c{i}" for i in range(n)]
    pay = [Payload(f"d{i // 10}", frozenset({TENANTS[i % 3]}), {"k": str(i % 5)}) for i in range(n)]
    store = FlatVectorStore(tmp_path, dim)
    for lo in range(0, n, 1000):
        store.upsert("kb", ids[lo : lo + 1000], vectors[lo : lo + 1000], pay[lo : lo + 1000])
    deleted = set(ids[::3])
    store.delete("kb", deleted)

    def brute(q: np.ndarray, flt: Filter | None, k: int) -> list[str]:
        scores = vectors @ q
        ok = [i for i in range(n) if ids[i] not in deleted and (flt is None or flt.matches(pay[i]))]
        return [ids[i] for i in sorted(ok, key=lambda i: -scores[i])[:k]]

    for reopen in (False, True):
        if reopen:
            store.flush()
            store = FlatVectorStore(tmp_path, dim)
        assert store.count("kb") == n - len(deleted)
        for _ in range(20):
            q = vectors[rng.integers(n)] + 0.3 * rng.standard_normal(dim).astype(np.float32)
            q /= np.linalg.norm(q)
            for flt in (None, Filter(frozenset({"tenant:b"})), Filter(None, {"k": "2"})):
                got = store.search("kb", q, 10, flt)
                assert [c for c, _ in got] == brute(q, flt, 10)
                assert got[0][1] == pytest.approx(float(vectors[int(got[0][0][1:])] @ q), 1e-6)


def test_flat_store_file_keeps_only_live_vectors_and_reads_the_old_format(
    tmp_path: Path,
) -> None:
    dim = 8
    eye = np.eye(dim, dtype=np.float32)
    store = FlatVectorStore(tmp_path, dim)
    pay = [Payload("d", frozenset({"*"}), {"subject": f"u-{i}"}) for i in range(dim)]
    store.upsert("kb", [f"c{i}" for i in range(dim)], eye, pay)
    store.delete("kb", ["c3"])
    store.flush()
    saved = np.load(tmp_path / "kb.npy")
    assert len(saved) == dim - 1 and not any(np.array_equal(row, eye[3]) for row in saved)
    assert "u-3" not in (tmp_path / "kb.json").read_text()
    # A collection saved before format 2: one payload per row.
    old = {
        "ids": ["a", "b"],
        "payloads": [
            {"doc_id": "d1", "tags": ["tenant:x"], "meta": {}},
            {"doc_id": "d2", "tags": ["tenant:y"], "meta": {}},
        ],
    }
    np.save(tmp_path / "old.npy", eye[:2])
    (tmp_path / "old.json").write_text(json.dumps(old))
    reopened = FlatVectorStore(tmp_path, dim)
    assert reopened.search("old", eye[1], 2, Filter(frozenset({"tenant:y"}))) == [
        ("b", pytest.approx(1.0))
    ]


def test_a_saved_bm25_index_loads_with_the_same_scores_and_keeps_changing(
    tmp_path: Path,
) -> None:
    rng = random.Random(11)
    seg = Segmenter()
    index, reference = BM25Index(seg), ReferenceBM25(seg)
    texts = passages()[:700]
    for n, text in enumerate(texts):
        p = payload(rng, n)
        index.add([(f"c{n}", text, p)])
        reference.add(f"c{n}", text, p)
    index.remove(["c1", "c2"])
    reference.remove(["c1", "c2"])
    index.save(tmp_path / "kb.npz")
    loaded = BM25Index.load(seg, tmp_path / "kb.npz")
    assert loaded is not None and len(loaded) == len(texts) - 2
    for query in QUERIES:
        assert_same_ranking(loaded.search(query, 20), reference.scores(query), 20)
    gone = [f"c{n}" for n in range(3, 600, 2)]  # enough to compact the loaded rows
    loaded.remove(gone)
    reference.remove(gone)
    new = payload(rng, 0)
    loaded.add([("new", "退款多久到账 refund", new)])
    reference.add("new", "退款多久到账 refund", new)
    for query in QUERIES:
        flt = Filter(frozenset({"tenant:a"}))
        assert_same_ranking(loaded.search(query, 20, flt), reference.scores(query, flt), 20)
    assert BM25Index.load(seg, tmp_path / "missing.npz") is None
