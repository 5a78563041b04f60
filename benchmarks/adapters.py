"""What mixing LoRA adapters costs: 16 streams on the embedded engine, one or two adapters.

llama.cpp applies adapters to a whole decode, so a step whose sequences run under two
adapter sets is two decodes (one per set), and switching the context's adapters makes
llama.cpp reserve its compute graph again. This measures aggregate decode tokens/s of
16 concurrent greedy streams (64 tokens each, EOS ignored) on the bundled model, in
paired rounds so the machine's drift hits every mode alike:

  base       16 streams, no adapter
  one        16 streams under one adapter (the low-rank products, no switching)
  two-mixed  8 streams under adapter A beside 8 under adapter B (two decodes a step)
  base+one   8 streams on the base model beside 8 under one adapter

Adapters are random rank-8 LoRA files for attn_q, attn_v and ffn_up, written with the
``gguf`` package as the tests do (tests/engine/llamacpp/lora_gguf.py). Prints a table
and writes JSON. Never a pass/fail test.

    python benchmarks/adapters.py --out benchmarks/results/adapters.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from luodi.config import EngineSettings
from luodi.config.models import AdapterSettings
from luodi.engine.llamacpp.default_model import default_model_path
from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.engine.llamacpp.model import select_kernels
from luodi.engine.types import GenerationRequest, SamplingParams
from tests.engine.llamacpp.lora_gguf import write_random_lora

MODES: dict[str, list[str | None]] = {
    "base": [None] * 16,
    "one": ["a"] * 16,
    "two-mixed": ["a", "b"] * 8,
    "base+one": [None, "a"] * 8,
}
PROMPTS = ["Tell me about the sea.", "Explain photosynthesis.", "Write a poem about rain."]


async def one_stream(engine: LlamaCppEngine, i: int, adapter: str | None, n: int) -> int:
    params = SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True)
    request = GenerationRequest(engine.tokenize(PROMPTS[i % len(PROMPTS)] + f" ({i})"), params)
    tokens = 0
    async for event in engine.generate(request, adapter=adapter):
        tokens += len(event.token_ids)
    return tokens


async def run_mode(engine: LlamaCppEngine, adapters: list[str | None], n: int) -> float:
    started = time.monotonic()
    counts = await asyncio.gather(*(one_stream(engine, i, a, n) for i, a in enumerate(adapters)))
    return sum(counts) / (time.monotonic() - started)


async def main(rounds: int, tokens: int, threads: int) -> dict[str, object]:
    select_kernels(batch_invariant=True)
    cache = Path(os.environ.get("LUODI_ENGINE__CACHE_DIR", Path.home() / ".cache" / "luodi"))
    base = default_model_path(cache)
    folder = Path(tempfile.mkdtemp(prefix="luodi-adapters-"))
    files = {
        "a": write_random_lora(base, folder / "a.gguf", seed=1),
        "b": write_random_lora(base, folder / "b.gguf", seed=2),
    }
    settings = EngineSettings(
        n_ctx=4096,
        n_threads=threads,
        max_batch_size=16,
        prefill_chunk=256,
        n_batch=512,
        cache_dir=cache,
        prefix_cache=False,  # every round computes its prompts: modes stay comparable
        adapters=[AdapterSettings(name=k, path=v) for k, v in files.items()],
    )
    engine = LlamaCppEngine(settings)
    await engine.start()
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        await run_mode(engine, MODES["two-mixed"], 8)  # warm every kernel and graph
        for _ in range(rounds):
            for mode, adapters in MODES.items():
                results[mode].append(await run_mode(engine, adapters, tokens))
    finally:
        await engine.stop()
    medians = {mode: statistics.median(v) for mode, v in results.items()}
    return {
        "streams": 16,
        "tokens_per_stream": tokens,
        "rounds": rounds,
        "threads": threads,
        "tokens_per_s": results,
        "median_tokens_per_s": medians,
        "vs_base": {mode: medians[mode] / medians["base"] for mode in MODES},
        "vs_one": {mode: medians[mode] / medians["one"] for mode in MODES},
        "load_avg": os.getloadavg(),
    }


def report(result: dict[str, object]) -> str:
    medians: dict[str, float] = result["median_tokens_per_s"]  # type: ignore[assignment]
    vs_base: dict[str, float] = result["vs_base"]  # type: ignore[assignment]
    vs_one: dict[str, float] = result["vs_one"]  # type: ignore[assignment]
    lines = [f"{'mode':<10} {'tok/s':>8} {'vs base':>8} {'vs one':>8}"]
    for mode in MODES:
        lines.append(f"{mode:<10} {medians[mode]:>8.1f} {vs_base[mode]:>8.2f} {vs_one[mode]:>8.2f}")
    lines.append(f"load average: {result['load_avg']}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/adapters.json"))
    args = parser.parse_args()
    outcome = asyncio.run(main(args.rounds, args.tokens, args.threads))
    print(report(outcome))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(outcome, indent=2) + "\n", encoding="utf-8")
