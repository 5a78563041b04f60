"""GET /v1/models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from luodi.api.deps import StateDep
from luodi.embedding import Embedder
from luodi.engine.pool import PooledEngine

__all__ = ["router"]

router = APIRouter()


def _model_card(name: str, info: Any, created: int, engine: Any = None) -> dict[str, Any]:
    card = {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": info.owned_by,
        "context_length": info.context_length,
        "max_model_len": info.context_length,
        "quantization": info.quantization,
        "size_bytes": info.size_bytes,
        "capabilities": list(info.capabilities),
        "backend": info.backend,
    }
    if isinstance(engine, PooledEngine):
        # An embedded model of the pool: whether it is in memory, and what it takes there.
        pooled = engine.entry.describe()
        card.update({k: v for k, v in pooled.items() if k != "name"})
        if engine.adapter is not None:  # the model under one of its LoRA adapters
            card.update(parent=engine.name, adapter=engine.adapter, aliases=[])
            del card["adapters"]
        return card
    backends = engine.health().get("backends") if engine is not None else None
    if backends:
        card["backends"] = backends  # a routed model: each backend's role, place and state
    return card


@router.get("/v1/models")
async def list_models(state: StateDep) -> dict[str, Any]:
    """Every served model with its context length, quantization, size and capabilities.

    An embedded model of the pool is listed once, under its name, with its aliases,
    its state (loaded, loading, unloaded) and its memory, whether loaded or not.
    """
    cards = [
        _model_card(n, e.info, state.started_at, e)
        for n, e in state.engines.items()
        # An alias is listed with its model, as its field.
        if not (isinstance(e, PooledEngine) and n != e.served_name)
    ]
    cards += [_embedding_card(n, e, state.started_at) for n, e in state.embedders.items()]
    return {"object": "list", "data": cards}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, state: StateDep) -> dict[str, Any]:
    if model_id in state.embedders:
        return _embedding_card(model_id, state.embedders[model_id], state.started_at)
    engine = state.engine_for(model_id)
    return _model_card(model_id, engine.info, state.started_at, engine)


def _embedding_card(name: str, embedder: Embedder, created: int) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": "luodi",
        "context_length": embedder.max_tokens,
        "max_model_len": embedder.max_tokens,
        "dimensions": embedder.dim,
        "capabilities": ["embedding"],
        "backend": "embedding",
    }
