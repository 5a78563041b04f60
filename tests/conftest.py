"""Shared fixtures: the real default model, loaded once per test session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from luodi.config import EngineSettings
from luodi.engine.llamacpp.engine import LlamaCppEngine


def engine_settings(tmp: Path, **overrides: object) -> EngineSettings:
    """Small, fast engine settings for tests; the default model, 2 threads."""
    base: dict[str, object] = {
        "n_ctx": 8192,
        "n_threads": 2,
        "max_batch_size": 32,
        "prefill_chunk": 256,
        "n_batch": 512,
        "cache_dir": tmp,
        "max_wait_ms": 5.0,
    }
    base.update(overrides)
    return EngineSettings(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache dir for the session, so the default model is assembled once."""
    return Path.home() / ".cache" / "luodi-tests"


@pytest.fixture(scope="session")
async def engine(model_cache: Path) -> AsyncIterator[LlamaCppEngine]:
    """The embedded engine on the default model, shared by every test that reads only."""
    eng = LlamaCppEngine(engine_settings(model_cache))
    await eng.start()
    yield eng
    await eng.stop()
