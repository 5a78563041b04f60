"""``PooledEngine``: the Engine the API sees for one pooled model, loaded or not.

It answers ``info`` and ``health`` from the pool's entry while the model is
unloaded; ``ensure_loaded`` (awaited by the gateway's Load stage) brings it in
before the request is planned with its tokenizer; ``generate`` holds it loaded for
as long as the request runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Protocol, runtime_checkable

from luodi.engine.base import FileBackedEngine, LocalEngine
from luodi.engine.pool.pool import AdapterHost, ModelPool
from luodi.engine.pool.state import ModelState, PoolEntry
from luodi.engine.types import (
    GenerationEvent,
    GenerationRequest,
    ModelInfo,
    PromptRequest,
    TemplateMetadata,
)
from luodi.errors import ServiceUnavailableError

__all__ = ["OnDemand", "PooledEngine"]

_CAPABILITIES = ("chat", "completion", "tools", "json_schema")


@runtime_checkable
class OnDemand(Protocol):
    """An engine whose model may need loading before a request can be planned."""

    async def ensure_loaded(self) -> None: ...


class PooledEngine:
    """One pooled model behind the Engine protocol; the pool decides when it is resident.

    With ``adapter``, requests run under that LoRA adapter of the model (served as
    ``name:adapter``); the model is the same one, loaded once.
    """

    def __init__(self, pool: ModelPool, name: str, adapter: str | None = None) -> None:
        self.pool = pool
        self.name = name
        self.adapter = adapter

    @property
    def served_name(self) -> str:
        """``name``, or ``name:adapter``."""
        return self.name if self.adapter is None else f"{self.name}:{self.adapter}"

    @property
    def entry(self) -> PoolEntry:
        return self.pool.get(self.name)

    @property
    def info(self) -> ModelInfo:
        entry = self.entry
        if entry.engine is not None and entry.state is ModelState.LOADED:
            info = entry.engine.info
            return info if self.adapter is None else replace(info, name=self.served_name)
        return ModelInfo(
            name=self.served_name,
            context_length=entry.context_length,
            quantization=entry.quantization,
            size_bytes=entry.memory.weights_bytes,
            capabilities=_CAPABILITIES,
            backend="llamacpp",
        )

    async def start(self) -> None:
        """No-op: the pool loads models (pinned ones at start-up, others on demand)."""

    async def stop(self) -> None:
        """No-op: ``ModelPool.stop`` unloads every model once."""

    async def ensure_loaded(self) -> None:
        """Load the model now unless it is (the Load stage, before planning)."""
        await self.pool.ensure_loaded(self.name)

    @property
    def weights_file(self) -> Path | None:
        """The loaded model's GGUF; None while the pool has it unloaded."""
        try:
            engine = self._loaded()
        except ServiceUnavailableError:
            return None
        return engine.weights_file if isinstance(engine, FileBackedEngine) else None

    def _loaded(self) -> LocalEngine:
        entry = self.entry
        if entry.engine is None or entry.state is not ModelState.LOADED:
            raise ServiceUnavailableError(
                f"model '{entry.name}' was unloaded before the request was planned"
                " (another model needed its memory); retry",
                retry_after=1.0,
                code="model_unloaded",
            )
        return entry.engine

    def prepare(self, request: PromptRequest) -> list[GenerationRequest]:
        return self._loaded().prepare(request)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        """Run ``request`` on the model, loading it first if it was unloaded meanwhile."""
        async with self.pool.using(self.name) as engine:
            if self.adapter is None:
                stream = engine.generate(request)
            elif isinstance(engine, AdapterHost):
                stream = engine.generate(request, adapter=self.adapter)
            else:
                raise ServiceUnavailableError(f"model '{self.name}' takes no LoRA adapters")
            try:
                async for event in stream:
                    yield event
            finally:
                await stream.aclose()  # type: ignore[attr-defined]

    def abort(self, request_id: str) -> None:
        entry = self.entry
        if entry.engine is not None:
            entry.engine.abort(request_id)

    def health(self) -> dict[str, object]:
        """The loaded engine's health, or ok for a model its next request will load."""
        entry = self.entry
        pool_state = {"state": entry.state.value, "in_flight": entry.in_flight}
        if entry.engine is not None and entry.state is ModelState.LOADED:
            return {**entry.engine.health(), **pool_state}
        # A model that failed to load is reported, but the server is still live: its
        # next request tries again (a 503 here would have an orchestrator restart it).
        return {
            "status": "ok",
            "backend": "llamacpp",
            "model": entry.name,
            "last_error": entry.last_error,
            **pool_state,
        }

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        return self._loaded().tokenize(text, add_special=add_special)

    def detokenize(self, tokens: list[int]) -> str:
        return self._loaded().detokenize(tokens)

    @property
    def template_metadata(self) -> TemplateMetadata:
        return self._loaded().template_metadata
