"""Step time by kind on the real engine: what an arriving prompt costs running streams."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.engine.metrics import STEP_KINDS, EngineMetrics
from luodi.engine.types import GenerationRequest, SamplingParams
from tests.conftest import engine_settings

pytestmark = pytest.mark.model


async def _drain(engine: LlamaCppEngine, prompt: str, max_tokens: int) -> int:
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
    request = GenerationRequest(engine.tokenize(prompt), params)
    return sum([len(e.token_ids) async for e in engine.generate(request)])


async def test_steps_are_timed_as_decode_mixed_or_prefill(model_cache: Path) -> None:
    registry = CollectorRegistry()
    observer = EngineMetrics(registry).observer("llamacpp", "default")
    engine = LlamaCppEngine(
        engine_settings(model_cache, speculative={"enabled": False}), observer=observer
    )
    await engine.start()
    try:
        running = asyncio.create_task(_drain(engine, "Once upon a time", 48))
        await asyncio.sleep(0.3)  # the first stream decodes alone by now
        arriving = " ".join(["The history of the lighthouse on the northern cape."] * 8)
        assert await _drain(engine, arriving, 4) == 4
        assert await running == 48
    finally:
        await engine.stop()

    def count(kind: str) -> float:
        labels = {"backend": "llamacpp", "model": "default", "kind": kind}
        return registry.get_sample_value("luodi_engine_step_seconds_count", labels) or 0.0

    # The first prompt alone, decodes alone, and the second prompt beside the decodes.
    assert all(count(kind) >= 1 for kind in STEP_KINDS), {k: count(k) for k in STEP_KINDS}
    steps = sum(count(kind) for kind in STEP_KINDS)
    assert steps == registry.get_sample_value(
        "luodi_batch_size_count", {"backend": "llamacpp", "model": "default"}
    )
