"""Everything a running server holds, built once by ``create_app``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from luodi.api.awaiting import AwaitingFirstToken
from luodi.api.drain import Drain
from luodi.config import Settings
from luodi.embedding import Embedder
from luodi.engine.base import Engine
from luodi.errors import NotFoundError, ServiceUnavailableError
from luodi.knowledge import KnowledgeService
from luodi.privacy import PIIStage
from luodi.security import Gateway

if TYPE_CHECKING:
    from luodi.api.pipeline import Pipeline

__all__ = ["AppState"]


@dataclass
class AppState:
    """The server's parts; routes reach them through ``luodi.api.deps``."""

    settings: Settings
    engines: dict[str, Engine] = field(default_factory=dict)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    started_at: int = field(default_factory=lambda: int(time.time()))
    _gateway: Gateway | None = None
    pii: PIIStage | None = None
    """The PII stage, or None when ``privacy.enabled`` is off."""
    embedders: dict[str, Embedder] = field(default_factory=dict)
    """Served embedding models by name (``/v1/embeddings``)."""
    background: set[asyncio.Task[None]] = field(default_factory=set)
    """Long-running tasks the lifespan started (kept referenced until shutdown)."""
    knowledge: KnowledgeService | None = None
    """Knowledge bases (RAG), when an embedding model is served."""
    cloud_models: set[str] = field(default_factory=set)
    """Models with a backend off the premises: their requests are always masked."""
    drain: Drain = field(default_factory=Drain)
    """Requests in flight, and whether the server is shutting down."""
    awaiting: AwaitingFirstToken = field(default_factory=AwaitingFirstToken)
    """Requests not yet answered with a first event: background jobs wait for them."""
    pipeline: Pipeline | None = None
    """The gateway pipeline every model request runs (``create_app`` builds it)."""

    def leaves_premises(self, model: str) -> bool:
        return model in self.cloud_models

    def attach_gateway(self, gateway: Gateway) -> None:
        self._gateway = gateway

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            raise ServiceUnavailableError("the security gateway is not running", code="gateway")
        return self._gateway

    def engine_for(self, model: str) -> Engine:
        """The engine serving ``model``; 404 naming the model and what is served."""
        engine = self.engines.get(model)
        if engine is None:
            raise _unknown("model", model, self.engines)
        return engine

    def embedder_for(self, model: str) -> Embedder:
        """The embedding model called ``model``; 404 naming what is served."""
        embedder = self.embedders.get(model)
        if embedder is None:
            raise _unknown("embedding model", model, self.embedders)
        return embedder


def _unknown(kind: str, model: str, served: Mapping[str, object]) -> NotFoundError:
    names = ", ".join(sorted(served)) or "none"
    return NotFoundError(
        f"the {kind} '{model}' does not exist; served: {names}",
        param="model",
        code="model_not_found",
    )
