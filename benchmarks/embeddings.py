"""Embedding speed: the bundled MiniLM per backend, precision and thread count, side by side.

Measures what a knowledge-base ingest meets: ~200-word-piece chunks of real text (the
support FAQ and customer questions, zh and en, the knowledge-base fixtures, the Presidio
templates and the quantization text, joined line by line into chunks), embedded by

- ``numpy`` fp32 (the reference the indexes were built with), 1 and 2 BLAS threads;
- ``onnxruntime`` fp32 and int8 (luodi/engine/embeddings/_bert_graph.py), 1 and 2 threads;
- int8 on 2 threads at several ``batch_tokens`` (padded word pieces per forward pass);
- the same weights written as a BERT GGUF (f32, and q8_0 quantized by llama.cpp), run by
  luodi's ``LlamaCppEmbedder`` (llama.cpp's batched embedding decode), 1 and 2 threads
  (``--no-llamacpp`` skips them).

MiniLM's threads run batches side by side, one BLAS / ONNX Runtime thread each; llama.cpp's
are its own.

Every configuration runs in this one process, round-robin for ``--rounds`` rounds; each
keeps its best round, so load from other processes on a shared machine hits them all
alike. Reported per configuration: chunks/s (wall clock), chunks per CPU-second (the
process's CPU time: what one core sustains, much less sensitive to other processes),
short questions/s, and the minimum and mean cosine of its vectors against numpy fp32
over every question and chunk. The load average is printed before and after.

The ceiling: FLOPs of one chunk through MiniLM-L6 (4 projections per layer, 2 attention
products, 6 layers, at the chunks' mean length) against this machine's measured GEMM
throughput at the encoder's shapes (``(2 chunks x tokens, 384) @ (384, 1536)``): numpy
sgemm, ONNX Runtime fp32 MatMul and int8 DynamicQuantizeMatMul, per core (CPU time) and
on 2 threads (wall). The int8 ceiling counts the attention products at the fp32 rate.

    python benchmarks/embeddings.py [--rounds 3] [--out benchmarks/results/embeddings.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from luodi.embedding import Embedder  # noqa: E402
from luodi.engine.embeddings import LlamaCppEmbedder, MiniLMEmbedder  # noqa: E402

console = Console(width=120)
CORPORA = ROOT / "benchmarks" / "corpora"
CHUNK_PIECES = 200


def load_texts() -> tuple[list[str], list[str]]:
    """(lines of real text to chunk, short customer questions)."""
    questions = [
        json.loads(line)["text"]
        for line in (CORPORA / "support" / "labelled.jsonl").read_text().splitlines()
    ]
    lines: list[str] = []
    for path in [
        CORPORA / "support" / "faq.md",
        *sorted((ROOT / "tests" / "fixtures" / "knowledge").glob("*.*")),
        CORPORA / "presidio_evaluator_templates.txt",
        CORPORA / "quantization_text.txt",
    ]:
        lines += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return lines + questions, questions


def make_chunks(lines: Sequence[str], embedder: MiniLMEmbedder) -> list[str]:
    """Consecutive lines joined until each chunk holds >= CHUNK_PIECES word pieces."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line, count in zip(lines, embedder.count_tokens(lines), strict=True):
        current.append(line)
        size += count
        if size >= CHUNK_PIECES:
            chunks.append(" ".join(current))
            current, size = [], 0
    return chunks


def load() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# --- FLOPs and GEMM throughput ------------------------------------------------------------


def chunk_flops(
    tokens: float, hidden: int = 384, inner: int = 1536, layers: int = 6
) -> dict[str, float]:
    """FLOPs (2 per multiply-add) of one sequence of ``tokens`` through a BERT encoder."""
    linear = 2 * tokens * (3 * hidden * hidden + hidden * hidden + 2 * hidden * inner) * layers
    attention = 2 * 2 * tokens * tokens * hidden * layers  # Q.K^T and P.V
    return {"linear": linear, "attention": attention, "total": linear + attention}


@dataclass
class Gemm:
    kernel: str
    threads: int
    gflops_wall: float
    gflops_per_cpu_s: float


def _ort_matmul(w: np.ndarray, int8: bool, threads: int) -> Callable[[np.ndarray], Any]:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    k, n = w.shape
    if int8:
        scale = (np.abs(w).max(axis=0) / 127).astype(np.float32)
        inits = [
            numpy_helper.from_array(np.rint(w / scale).astype(np.int8), "w"),
            numpy_helper.from_array(scale, "s"),
            numpy_helper.from_array(np.zeros(n, np.int8), "z"),
        ]
        node = helper.make_node(
            "DynamicQuantizeMatMul", ["x", "w", "s", "z"], ["y"], domain="com.microsoft"
        )
    else:
        inits = [numpy_helper.from_array(w, "w")]
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
    graph = helper.make_graph(
        [node],
        "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", n])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        ir_version=10,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return lambda x: session.run(None, {"x": x})


def measure_gemm(m: int, rounds: int) -> list[Gemm]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, 384)).astype(np.float32)
    w = (rng.standard_normal((384, 1536)) * 0.05).astype(np.float32)
    flops = 2.0 * m * 384 * 1536
    out: list[Gemm] = []
    for threads in (1, 2):
        kernels: dict[str, Callable[[np.ndarray], Any]] = {
            "numpy sgemm": lambda a: a @ w,
            "onnxruntime fp32": _ort_matmul(w, False, threads),
            "onnxruntime int8": _ort_matmul(w, True, threads),
        }
        for name, fn in kernels.items():
            with threadpool_limits(limits=threads, user_api="blas"):
                fn(x)
                best_wall, best_cpu = np.inf, np.inf
                for _ in range(rounds):
                    reps = 20
                    wall, cpu = time.perf_counter(), time.process_time()
                    for _ in range(reps):
                        fn(x)
                    best_wall = min(best_wall, (time.perf_counter() - wall) / reps)
                    best_cpu = min(best_cpu, (time.process_time() - cpu) / reps)
            out.append(Gemm(name, threads, flops / best_wall / 1e9, flops / best_cpu / 1e9))
    return out


# --- embedders ----------------------------------------------------------------------------


@dataclass
class Row:
    config: str
    backend: str
    precision: str
    threads: int
    batch_tokens: int
    chunks_per_s: float = 0.0
    chunks_per_cpu_s: float = 0.0
    questions_per_s: float = 0.0
    cos_min: float = 1.0
    cos_mean: float = 1.0
    load_seconds_ms: float = 0.0


def minilm_gguf(folder: Path) -> dict[str, Path]:
    """The bundled MiniLM written as BERT GGUFs (f32, and q8_0 by llama.cpp) in ``folder``.

    Tensor names and the WordPiece vocabulary ("phantom space": ``##`` pieces bare, word
    starts prefixed with U+2581) as llama.cpp's convert_hf_to_gguf.py writes them.
    """
    import ctypes

    import gguf
    import llama_cpp
    from safetensors.numpy import load_file

    from luodi.engine.embeddings import minilm_model_dir

    src = minilm_model_dir()
    cfg = json.loads((src / "config.json").read_text())
    vocab = json.loads((src / "tokenizer.json").read_text())["model"]["vocab"]
    pieces = sorted(vocab, key=vocab.__getitem__)

    def special(t: str) -> bool:
        return t.startswith("[") and t.endswith("]")

    f32 = folder / "minilm-f32.gguf"
    writer = gguf.GGUFWriter(str(f32), "bert")
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_head_count(cfg["num_attention_heads"])
    writer.add_layer_norm_eps(cfg["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_token_type_count(cfg.get("type_vocab_size", 2))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(
        [t if special(t) else t[2:] if t.startswith("##") else "\u2581" + t for t in pieces]
    )
    writer.add_token_types(
        [gguf.TokenType.CONTROL if special(t) else gguf.TokenType.NORMAL for t in pieces]
    )
    for key, piece in (("bos", "[CLS]"), ("sep", "[SEP]"), ("pad", "[PAD]"), ("unk", "[UNK]")):
        getattr(writer, f"add_{key}_token_id")(vocab[piece])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, cfg["num_hidden_layers"])
    for name, tensor in load_file(str(src / "model.safetensors")).items():
        target = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if target is not None and not name.startswith("pooler"):
            writer.add_tensor(target, np.ascontiguousarray(tensor, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    q8 = folder / "minilm-q8_0.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    if llama_cpp.llama_model_quantize(str(f32).encode(), str(q8).encode(), ctypes.byref(params)):
        raise RuntimeError("llama_model_quantize failed")
    return {"f32": f32, "q8_0": q8}


def build(row: Row, ggufs: dict[str, Path]) -> Embedder:
    start = time.perf_counter()
    embedder: Embedder
    if row.backend == "llama.cpp":
        # Two chunks per decode, as ONNX Runtime's 512-token batches; MiniLM's 256 cut-off.
        embedder = LlamaCppEmbedder(
            ggufs[row.precision],
            pooling="mean",
            max_tokens=256,
            batch_size=2,
            n_threads=row.threads,
        )
    else:
        embedder = MiniLMEmbedder(
            backend=row.backend,  # type: ignore[arg-type]
            precision=row.precision,  # type: ignore[arg-type]
            n_threads=row.threads,
            batch_tokens=row.batch_tokens,
        )
    row.load_seconds_ms = (time.perf_counter() - start) * 1000
    return embedder


def configs(default_tokens: int, llamacpp: bool) -> list[Row]:
    rows = [
        Row("numpy fp32", "numpy", "fp32", 1, default_tokens),
        Row("numpy fp32", "numpy", "fp32", 2, default_tokens),
    ]
    for precision in ("fp32", "int8"):
        for threads in (1, 2):
            rows.append(
                Row(
                    f"onnxruntime {precision}",
                    "onnxruntime",
                    precision,
                    threads,
                    default_tokens,
                )
            )
    for tokens in (256, 512, 1024, 2048):
        if tokens != default_tokens:
            rows.append(Row(f"onnxruntime int8 bt{tokens}", "onnxruntime", "int8", 2, tokens))
    if llamacpp:
        for precision in ("f32", "q8_0"):
            for threads in (1, 2):
                rows.append(Row(f"llama.cpp {precision}", "llama.cpp", precision, threads, 512))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-llamacpp",
        action="store_true",
        help="skip the GGUF rows (MiniLM written as a BERT GGUF, run by llama.cpp)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "embeddings.json"
    )
    args = parser.parse_args()

    load_before = load()
    reference = MiniLMEmbedder(backend="numpy", n_threads=1)
    lines, questions = load_texts()
    chunks = make_chunks(lines, reference)
    tokens = float(np.mean([n + 2 for n in reference.count_tokens(chunks)]))  # + [CLS], [SEP]
    texts = questions + chunks
    console.print(
        f"{len(chunks)} chunks of {tokens:.0f} word pieces on average (with [CLS]/[SEP]), "
        f"{len(questions)} questions; load average {load_before}"
    )
    ref_vectors = reference.embed(texts)

    default_tokens = MiniLMEmbedder.__init__.__kwdefaults__["batch_tokens"]
    rows = configs(default_tokens, llamacpp=not args.no_llamacpp)
    folder = tempfile.TemporaryDirectory(prefix="luodi-minilm-gguf-")
    ggufs = {} if args.no_llamacpp else minilm_gguf(Path(folder.name))
    embedders = [build(row, ggufs) for row in rows]
    for row, embedder in zip(rows, embedders, strict=True):
        cos = np.sum(embedder.embed(texts) * ref_vectors, axis=1)
        row.cos_min, row.cos_mean = float(cos.min()), float(cos.mean())
    best: dict[int, tuple[float, float, float]] = {}
    for _ in range(args.rounds):
        for i, embedder in enumerate(embedders):
            embedder.embed(chunks[:2])
            wall, cpu = time.perf_counter(), time.process_time()
            embedder.embed(chunks)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            start = time.perf_counter()
            embedder.embed(questions)
            qwall = time.perf_counter() - start
            old = best.get(i, (np.inf, np.inf, np.inf))
            best[i] = (min(old[0], wall), min(old[1], cpu), min(old[2], qwall))
    for i, row in enumerate(rows):
        wall, cpu, qwall = best[i]
        row.chunks_per_s = len(chunks) / wall
        row.chunks_per_cpu_s = len(chunks) / cpu
        row.questions_per_s = len(questions) / qwall

    gemm = measure_gemm(m=2 * round(tokens), rounds=args.rounds)
    load_after = load()

    flops = chunk_flops(tokens)
    rate = {(g.kernel, g.threads): g for g in gemm}
    ceilings: dict[str, dict[str, float]] = {}
    for label, lin_kernel in (("fp32", "onnxruntime fp32"), ("int8", "onnxruntime int8")):
        fp_kernel = "onnxruntime fp32"
        per_core = flops["linear"] / (rate[lin_kernel, 1].gflops_per_cpu_s * 1e9) + flops[
            "attention"
        ] / (rate[fp_kernel, 1].gflops_per_cpu_s * 1e9)
        two_wall = flops["linear"] / (rate[lin_kernel, 2].gflops_wall * 1e9) + flops[
            "attention"
        ] / (rate[fp_kernel, 2].gflops_wall * 1e9)
        ceilings[label] = {
            "chunks_per_cpu_s": 1 / per_core,
            "two_idle_cores_chunks_per_s": 2 / per_core,
            "two_threads_wall_chunks_per_s": 1 / two_wall,
        }

    table = Table(
        title=f"MiniLM-L6 on ~{tokens:.0f}-piece chunks "
        f"(load {load_before[0]:.1f} -> {load_after[0]:.1f})"
    )
    for col in (
        "config",
        "threads",
        "batch tokens",
        "chunks/s",
        "chunks/CPU-s",
        "questions/s",
        "cos min",
        "cos mean",
        "load ms",
    ):
        table.add_column(col, justify="left" if col == "config" else "right")
    for row in rows:
        table.add_row(
            row.config,
            str(row.threads),
            str(row.batch_tokens),
            f"{row.chunks_per_s:.1f}",
            f"{row.chunks_per_cpu_s:.1f}",
            f"{row.questions_per_s:.0f}",
            f"{row.cos_min:.5f}",
            f"{row.cos_mean:.5f}",
            f"{row.load_seconds_ms:.0f}",
        )
    console.print(table)
    gtable = Table(title=f"GEMM ({2 * round(tokens)} x 384) @ (384 x 1536)")
    for col in ("kernel", "threads", "GFLOP/s wall", "GFLOP/s per CPU-s"):
        gtable.add_column(col, justify="left" if col == "kernel" else "right")
    for g in gemm:
        gtable.add_row(
            g.kernel, str(g.threads), f"{g.gflops_wall:.0f}", f"{g.gflops_per_cpu_s:.0f}"
        )
    console.print(gtable)
    console.print(
        f"FLOPs per chunk: {flops['total'] / 1e9:.2f} G "
        f"({flops['linear'] / 1e9:.2f} G projections, {flops['attention'] / 1e9:.2f} G attention)"
    )
    for label, c in ceilings.items():
        achieved = max(
            (
                r.chunks_per_cpu_s
                for r in rows
                if r.precision == label and r.backend == "onnxruntime" and r.threads == 1
            ),
            default=0.0,
        )
        console.print(
            f"ceiling {label}: {c['chunks_per_cpu_s']:.1f} chunks per CPU-s "
            f"(achieved {achieved:.1f}, {achieved / c['chunks_per_cpu_s']:.0%}); "
            f"2 idle cores {c['two_idle_cores_chunks_per_s']:.1f} chunks/s; "
            f"2 threads now {c['two_threads_wall_chunks_per_s']:.1f} chunks/s"
        )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "load_before": load_before,
                    "load_after": load_after,
                },
                "chunks": len(chunks),
                "chunk_tokens_mean": tokens,
                "questions": len(questions),
                "rounds": args.rounds,
                "rows": [asdict(r) for r in rows],
                "gemm": [asdict(g) for g in gemm],
                "flops_per_chunk": flops,
                "ceilings": ceilings,
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
