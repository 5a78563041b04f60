"""How far a greedy token's log-probability moves in a batch, against the same request alone.

Eight requests (four prompts, each on the base model and under a random LoRA adapter)
run alone first, then together in rounds whose arrivals are staggered by up to 50 ms,
so some finish while others still decode and llama.cpp places their next cells in the
freed ones. For every token both runs chose alike, the drift is |logprob alone -
logprob in the batch|; this prints the largest per kind of request, and the smallest
per-token effect of the adapter itself (base against adapted scoring of the base's own
answer), which is what an adapter leaking into a base request would add. Prints a table
and writes JSON. Never a pass/fail test (tests/engine/llamacpp/test_adapters.py keeps
its tolerance from these figures).

    python benchmarks/batch_drift.py --out benchmarks/results/batch-drift.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from luodi.config import EngineSettings
from luodi.config.models import AdapterSettings
from luodi.engine.llamacpp.default_model import default_model_path
from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.engine.llamacpp.model import select_kernels
from luodi.engine.types import GenerationRequest, SamplingParams
from tests.engine.llamacpp.lora_gguf import write_random_lora

PROMPTS = ["The capital of France is", "Once upon a time", "def add(a, b):", "Water boils at"]
TOKENS = 8


async def answer(
    engine: LlamaCppEngine, prompt: str, adapter: str | None, delay: float = 0.0
) -> list[tuple[int, float]]:
    await asyncio.sleep(delay)
    params = SamplingParams(temperature=0.0, max_tokens=TOKENS, logprobs=1)
    request = GenerationRequest(engine.tokenize(prompt), params)
    events = [e async for e in engine.generate(request, adapter=adapter)]
    return [(e.token_ids[0], e.logprobs[0].logprob) for e in events if e.token_ids]


async def score(engine: LlamaCppEngine, tokens: list[int], adapter: str | None) -> list[float]:
    params = SamplingParams(temperature=0.0, max_tokens=0, prompt_logprobs=0)
    request = GenerationRequest(tokens, params)
    events = [e async for e in engine.generate(request, adapter=adapter)]
    return [p.logprob for p in events[-1].prompt_logprobs[1:]]


async def adapter_effect(engine: LlamaCppEngine) -> float:
    """The smallest per-token change the adapter makes to the base model's own answers."""
    smallest = float("inf")
    for prompt in PROMPTS:
        prompt_tokens = engine.tokenize(prompt)
        full = prompt_tokens + [t for t, _ in await answer(engine, prompt, None)]
        base = await score(engine, full, None)
        adapted = await score(engine, full, "lora")
        start = len(prompt_tokens) - 1
        pairs = zip(adapted[start:], base[start:], strict=True)
        smallest = min(smallest, *(abs(a - b) for a, b in pairs))
    return smallest


async def main(rounds: int, scale: float, seed: int) -> dict[str, object]:
    select_kernels(batch_invariant=True)
    cache = Path(os.environ.get("LUODI_ENGINE__CACHE_DIR", Path.home() / ".cache" / "luodi"))
    folder = Path(tempfile.mkdtemp(prefix="luodi-drift-"))
    lora = write_random_lora(default_model_path(cache), folder / "lora.gguf", seed=1)
    settings = EngineSettings(
        n_ctx=2048,
        n_threads=2,
        max_batch_size=32,
        prefill_chunk=256,
        n_batch=512,
        cache_dir=cache,
        prefix_cache=False,
        adapters=[AdapterSettings(name="lora", path=lora, scale=scale)],
    )
    engine = LlamaCppEngine(settings)
    await engine.start()
    rng = random.Random(seed)
    plan = [(p, a) for p in PROMPTS for a in (None, "lora")]
    drift: dict[str, float] = {"base": 0.0, "adapted": 0.0}
    compared = {"base": 0, "adapted": 0}
    try:
        effect = await adapter_effect(engine)
        alone = [await answer(engine, p, a) for p, a in plan]
        for _ in range(rounds):
            together = await asyncio.gather(
                *(answer(engine, p, a, rng.random() * 0.05) for p, a in plan)
            )
            for (_, adapter), solo, mixed in zip(plan, alone, together, strict=True):
                kind = "base" if adapter is None else "adapted"
                for (tok_a, lp_a), (tok_b, lp_b) in zip(solo, mixed, strict=True):
                    if tok_a != tok_b:
                        break
                    drift[kind] = max(drift[kind], abs(lp_a - lp_b))
                    compared[kind] += 1
    finally:
        await engine.stop()
    return {
        "rounds": rounds,
        "adapter_scale": scale,
        "tokens_per_request": TOKENS,
        "max_drift_nats": drift,
        "tokens_compared": compared,
        "smallest_adapter_effect_nats": effect,
        "load_avg": os.getloadavg(),
    }


def report(result: dict[str, object]) -> str:
    drift: dict[str, float] = result["max_drift_nats"]  # type: ignore[assignment]
    compared: dict[str, int] = result["tokens_compared"]  # type: ignore[assignment]
    lines = [f"{'requests':<10} {'tokens':>7} {'max drift (nats)':>17}"]
    for kind in ("base", "adapted"):
        lines.append(f"{kind:<10} {compared[kind]:>7} {drift[kind]:>17.3f}")
    lines.append(
        f"adapter at scale {result['adapter_scale']}: moves every base token by"
        f" >= {result['smallest_adapter_effect_nats']:.2f} nats"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--scale", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/batch-drift.json"))
    args = parser.parse_args()
    outcome = asyncio.run(main(args.rounds, args.scale, args.seed))
    print(report(outcome))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(outcome, indent=2) + "\n", encoding="utf-8")
