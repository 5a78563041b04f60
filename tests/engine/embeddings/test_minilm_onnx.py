"""MiniLM on ONNX Runtime gives the numpy encoder's vectors (fp32) or stays close (int8).

Tolerances, over 590 real Chinese and English texts and ~200-piece chunks of them: the
minimum cosine between a text's vector and the numpy fp32 one is >= 0.9999 for fp32 and
>= 0.99 for int8 (0.995 measured), so an index built with either backend stays valid.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from luodi.config.embeddings import EmbeddingSettings
from luodi.embedding import EmbeddingMatrix
from luodi.engine.embeddings import MiniLMEmbedder, build_embedder
from luodi.engine.embeddings._bert_ort import cpu_has_vnni

ROOT = Path(__file__).resolve().parents[3]
SUPPORT = ROOT / "benchmarks" / "corpora" / "support"
KNOWLEDGE = ROOT / "tests" / "fixtures" / "knowledge"


def real_texts() -> list[str]:
    """Customer questions (zh, en) and FAQ lines of the support corpus and KB fixtures."""
    lines = (SUPPORT / "labelled.jsonl").read_text().splitlines()
    texts = [json.loads(line)["text"] for line in lines]
    for path in [SUPPORT / "faq.md", *sorted(KNOWLEDGE.glob("*.*"))]:
        texts += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return texts


def chunks_of(texts: Sequence[str], embedder: MiniLMEmbedder, pieces: int = 200) -> list[str]:
    """Consecutive texts joined into chunks of about ``pieces`` word pieces."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for text, count in zip(texts, embedder.count_tokens(texts), strict=True):
        current.append(text)
        size += count
        if size >= pieces:
            chunks.append(" ".join(current))
            current, size = [], 0
    return chunks


def min_cosine(a: EmbeddingMatrix, b: EmbeddingMatrix) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


@pytest.fixture(scope="module")
def int8() -> MiniLMEmbedder:
    return MiniLMEmbedder(backend="onnxruntime", precision="int8", n_threads=1)


@pytest.fixture(scope="module")
def fp32() -> MiniLMEmbedder:
    return MiniLMEmbedder(backend="onnxruntime", precision="fp32", n_threads=1)


@pytest.fixture(scope="module")
def texts(minilm: MiniLMEmbedder) -> list[str]:
    texts = real_texts()
    return texts + chunks_of(texts, minilm)


@pytest.fixture(scope="module")
def reference(minilm: MiniLMEmbedder, texts: list[str]) -> EmbeddingMatrix:
    return minilm.embed(texts)


def test_fp32_onnx_vectors_equal_numpy_vectors(
    fp32: MiniLMEmbedder, texts: list[str], reference: EmbeddingMatrix
) -> None:
    assert len(texts) > 590
    assert min_cosine(fp32.embed(texts), reference) >= 0.9999


def test_int8_vectors_stay_within_cosine_tolerance_of_fp32(
    int8: MiniLMEmbedder, texts: list[str], reference: EmbeddingMatrix
) -> None:
    vectors = int8.embed(texts)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert min_cosine(vectors, reference) >= 0.99


def test_int8_keeps_the_sentence_transformers_similarity_order(int8: MiniLMEmbedder) -> None:
    # sentence-transformers' README: weather/sunny 0.666, weather/stadium 0.105.
    weather, sunny, stadium = int8.embed(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    assert float(weather @ sunny) == pytest.approx(0.666, abs=0.02)
    assert float(weather @ stadium) == pytest.approx(0.105, abs=0.02)


@pytest.mark.parametrize("backend", ["fp32", "int8"])
def test_onnx_vector_of_a_text_does_not_depend_on_its_batch(
    backend: str, fp32: MiniLMEmbedder, int8: MiniLMEmbedder
) -> None:
    # Activations are quantized per token, so a long neighbour cannot coarsen a short text.
    embedder = fp32 if backend == "fp32" else int8
    texts = [
        "short",
        "How do I reset the password of my online banking account?",
        "营业时间是周一至周五上午九点到下午五点。",
        " ".join(["long"] * 120),
    ]
    batched = embedder.embed(texts)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(embedder.embed([text])[0], batched[i], atol=1e-6)


def test_onnx_input_is_truncated_at_256_word_pieces(int8: MiniLMEmbedder) -> None:
    words = [f"word{i}" for i in range(600)]
    full = int8.embed([" ".join(words)])
    extra = int8.embed([" ".join([*words, "completely", "different", "tail"])])
    np.testing.assert_allclose(full, extra, atol=1e-6)


def test_int8_embeds_chunks_at_least_twice_as_fast_as_numpy(
    minilm: MiniLMEmbedder, int8: MiniLMEmbedder, texts: list[str]
) -> None:
    # CPU time of one thread each, side by side: the ratio holds on a loaded machine.
    chunks = chunks_of(texts, minilm)[:16]

    def cpu_seconds(embedder: MiniLMEmbedder) -> float:
        embedder.embed(chunks[:2])
        start = time.process_time()
        embedder.embed(chunks)
        return time.process_time() - start

    numpy_s = min(cpu_seconds(minilm) for _ in range(2))
    int8_s = min(cpu_seconds(int8) for _ in range(2))
    assert numpy_s / int8_s >= 2.0


def test_default_settings_embed_with_onnx_int8() -> None:
    embedder = build_embedder(EmbeddingSettings())
    assert isinstance(embedder, MiniLMEmbedder)
    assert (embedder.backend, embedder.precision) == ("onnxruntime", "int8")
    assert embedder.embed(["开户需要带身份证。"]).shape == (1, 384)


def test_numpy_backend_refuses_int8() -> None:
    with pytest.raises(ValueError, match="needs backend='onnxruntime'"):
        MiniLMEmbedder(backend="numpy", precision="int8")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu avx2 avx512f avx512_vnni", True),
        ("fpu avx2 avx_vnni", True),
        ("fpu avx2 fma", False),
    ],
)
def test_vnni_is_read_from_cpu_flags(tmp_path: Path, flags: str, expected: bool) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert cpu_has_vnni(cpuinfo) is expected
    assert cpu_has_vnni(tmp_path / "absent") is False


def test_two_threads_give_the_one_thread_vectors(int8: MiniLMEmbedder, texts: list[str]) -> None:
    two = MiniLMEmbedder(backend="onnxruntime", precision="int8", n_threads=2)
    np.testing.assert_allclose(two.embed(texts[:200]), int8.embed(texts[:200]), atol=1e-6)


class _RecordingEncoder:
    """Wraps an encoder and records the nice value of every thread that runs a batch."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.hidden = 384
        self.nice: set[int] = set()
        self.threads: set[int] = set()

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        native = threading.get_native_id()
        self.threads.add(native)
        self.nice.add(os.getpriority(os.PRIO_PROCESS, native))
        return self.inner.forward(ids, mask)  # type: ignore[attr-defined, no-any-return]


def test_helper_threads_inherit_the_callers_lowered_priority(texts: list[str]) -> None:
    # An ingest lowers its own thread's priority; batches run on threads it starts.
    embedder = MiniLMEmbedder(backend="onnxruntime", precision="int8", n_threads=2)
    recorder = _RecordingEncoder(embedder._encoder)
    embedder._encoder = recorder

    def ingest() -> None:
        native = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, native, os.getpriority(os.PRIO_PROCESS, native) + 5)
        embedder.embed(texts)

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    worker = threading.Thread(target=ingest)
    worker.start()
    worker.join()
    assert len(recorder.threads) == 2
    assert recorder.nice == {min(base + 5, 19)}
