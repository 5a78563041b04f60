"""Quantization benchmark: one model at F16, Q8_0 and Q4_K_M, side by side.

No F16 source ships offline, so the F16 file is built the honest way and labelled so:
the bundled Gemma-3-270M Q4_K_M is *dequantized* to F16 (``llama_model_quantize``,
type F16, ``allow_requantize``), and Q8_0 is quantized from that F16. Both therefore
carry Q4_K_M's rounding error: the table measures what each storage format costs in
memory and speed, and how much error Q8_0 adds on top of the same weights, not how an
F16 original compares (that one would read slightly better than every row here).

For each file, in its own process (so resident memory and ggml's kernel choice start
clean), with the embedded ``LlamaCppEngine`` as ``luodi serve`` runs it:

- file size;
- resident memory while serving: RSS after loading the engine and a short decode,
  minus RSS before (weights as mapped and repacked, the KV cache, compute buffers);
- single-stream decode tokens/s (one greedy stream, ``ignore_eos``) and aggregate
  tokens/s of 16 concurrent streams;
- perplexity of a fixed text (``benchmarks/corpora/quantization_text.txt``) through
  ``luodi.evaluation.perplexity`` with a scorer that reads llama.cpp's logits directly.

    python benchmarks/quantization.py [--threads 2] [--out benchmarks/results/quantization.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from luodi.engine.llamacpp.default_model import default_model_path
from luodi.evaluation.scoring import Score
from luodi.models import inspect_model
from luodi.models.quantize import plan_quantize, run_quantize

console = Console()
CACHE = Path.home() / ".cache" / "luodi"
TEXT = Path(__file__).parent / "corpora" / "quantization_text.txt"
PROMPT = "Write a short story about a lighthouse keeper number {i}."


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class LogitScorer:
    """A ChoiceScorer over a LlamaModel: log-probabilities straight from the logits."""

    def __init__(self, path: Path, threads: int) -> None:
        from luodi.engine.llamacpp.model import ContextParams, LlamaModel

        self.batch = 128
        self.model = LlamaModel(
            path,
            ContextParams(
                n_ctx=2048,
                n_seq_max=1,
                n_batch=self.batch,
                n_threads=threads,
                n_threads_batch=threads,
            ),
        )

    async def score(self, context: str, continuation: str) -> Score:
        start = self.model.tokenize(context)
        tokens = self.model.tokenize(context + continuation)
        self.model.clear()
        total = 0.0
        for at in range(0, len(tokens) - 1, self.batch):
            chunk = tokens[at : at + self.batch]
            self.model.decode([(t, at + i, 0, True) for i, t in enumerate(chunk)])
            for i in range(len(chunk)):
                pos = at + i
                if pos + 1 >= len(tokens) or pos + 1 < len(start):
                    continue
                logits = self.model.logits(i).astype(np.float64)
                top = logits.max()
                log_z = top + math.log(np.exp(logits - top).sum())
                total += logits[tokens[pos + 1]] - log_z
        return Score(logprob=total, greedy=False)

    def close(self) -> None:
        self.model.close()


async def _serve_and_measure(path: Path, threads: int, cache: Path) -> dict[str, float]:
    from luodi.config import EngineSettings
    from luodi.engine.llamacpp.engine import LlamaCppEngine
    from luodi.engine.types import GenerationRequest, SamplingParams

    before = _rss()
    engine = LlamaCppEngine(
        EngineSettings(
            model=path,
            n_ctx=4096,
            n_threads=threads,
            max_batch_size=16,
            cache_dir=cache,
        )
    )
    await engine.start()

    async def stream(i: int, tokens: int) -> tuple[float, float, int]:
        params = SamplingParams(temperature=0.0, max_tokens=tokens, ignore_eos=True)
        request = GenerationRequest(engine.tokenize(PROMPT.format(i=i)), params)
        first = last = 0.0
        count = 0
        async for event in engine.generate(request):
            if event.token_ids:
                last = time.perf_counter()
                first = first or last
                count += len(event.token_ids)
        return first, last, count

    await stream(0, 16)  # the short decode before the memory reading
    rss = _rss() - before
    single = []
    for r in range(3):
        first, last, count = await stream(100 + r, 64)
        single.append((count - 1) / (last - first))
    start = time.perf_counter()
    results = await asyncio.gather(*(stream(200 + i, 32) for i in range(16)))
    multi = sum(c for *_, c in results) / (time.perf_counter() - start)
    await engine.stop()
    return {
        "rss_delta_bytes": rss,
        "single_stream_tok_s": sorted(single)[1],
        "streams16_tok_s": multi,
    }


def _worker(conn: Connection, path: str, threads: int, cache: str) -> None:
    from luodi.evaluation.load import run
    from luodi.evaluation.perplexity import perplexity

    row: dict[str, Any] = run(_serve_and_measure(Path(path), threads, Path(cache)))
    scorer = LogitScorer(Path(path), threads)
    try:
        ppl = run(perplexity(scorer, TEXT.read_text(encoding="utf-8"), chunk_chars=1200))
    finally:
        scorer.close()
    row["perplexity"] = ppl.to_json()
    conn.send(row)


def measure(path: Path, threads: int, cache: Path) -> dict[str, Any]:
    """One file's row, measured in a fresh process."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_worker, args=(child, str(path), threads, str(cache)))
    proc.start()
    row: dict[str, Any] = parent.recv()
    proc.join(timeout=60)
    return row


def build_variants(work: Path, threads: int) -> dict[str, tuple[Path, str]]:
    """The three files: bundled Q4_K_M, F16 dequantized from it, Q8_0 from that F16."""
    q4 = default_model_path(CACHE)
    f16 = work / "gemma-3-270m-f16-from-q4_k_m.gguf"
    q8 = work / "gemma-3-270m-q8_0-from-f16.gguf"
    if not f16.exists():
        console.print("dequantizing the bundled Q4_K_M to F16 (llama_model_quantize, F16)")
        run_quantize(plan_quantize(q4, f16, "F16", allow_requantize=True, threads=threads))
    if not q8.exists():
        console.print("quantizing that F16 to Q8_0")
        run_quantize(plan_quantize(f16, q8, "Q8_0", threads=threads))
    return {
        "F16": (f16, "dequantized from the bundled Q4_K_M (no F16 source ships offline)"),
        "Q8_0": (q8, "quantized from the F16 row (so it carries Q4_K_M's error too)"),
        "Q4_K_M": (q4, "the bundled file"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=CACHE / "quantization-bench")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results" / "quantization.json",
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    variants = build_variants(args.work, args.threads)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as cache:
        for name, (path, origin) in variants.items():
            console.print(f"measuring {name} ({path.name})")
            info = inspect_model(path)
            rows[name] = {
                "file": path.name,
                "origin": origin,
                "file_bytes": info.file_size,
                "bits_per_weight": info.memory.bits_per_weight,
                "quantization": [s.type for s in info.quantization],
            } | measure(path, args.threads, Path(cache))

    table = Table(title=f"Gemma-3-270M by storage format ({args.threads} threads)")
    for col in ("format", "file", "bits/weight", "RSS serving", "1 stream", "16 streams"):
        table.add_column(col, justify="right")
    table.add_column("byte ppl", justify="right")
    table.add_column("word ppl", justify="right")
    for name, row in rows.items():
        table.add_row(
            name,
            f"{row['file_bytes'] / 2**20:.0f} MiB",
            f"{row['bits_per_weight']:.2f}",
            f"{row['rss_delta_bytes'] / 2**20:.0f} MiB",
            f"{row['single_stream_tok_s']:.1f} tok/s",
            f"{row['streams16_tok_s']:.1f} tok/s",
            f"{row['perplexity']['byte_perplexity']:.4f}",
            f"{row['perplexity']['word_perplexity']:.2f}",
        )
    console.print(table)
    console.print(
        "F16 here is the bundled Q4_K_M dequantized to F16, and Q8_0 is quantized from"
        " that F16: all three rows hold the same Q4_K_M-rounded weights, so perplexity"
        " differences show what each format adds, not the distance to an F16 original."
    )
    result = {
        "model": "gemma-3-270m",
        "threads": args.threads,
        "text": str(TEXT.relative_to(Path(__file__).parent.parent)),
        "note": (
            "F16 is the bundled Q4_K_M dequantized to F16 (llama_model_quantize, F16,"
            " allow_requantize); Q8_0 is quantized from it. RSS is the serving process's"
            " resident memory after loading and a short decode, minus before."
        ),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
