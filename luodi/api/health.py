"""GET /health and GET /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from luodi.api.deps import StateDep

__all__ = ["router"]

router = APIRouter()


@router.get("/health")
async def health(state: StateDep) -> JSONResponse:
    """200 when every backend is healthy, 503 otherwise (or while draining at shutdown)."""
    backends: dict[str, Any] = {name: engine.health() for name, engine in state.engines.items()}
    ok = all(b.get("status") == "ok" for b in backends.values())
    status = "draining" if state.drain.draining else "ok" if ok else "degraded"
    return JSONResponse(
        {"status": status, "models": backends},
        status_code=200 if status == "ok" else 503,
    )


@router.get("/metrics")
async def metrics(state: StateDep) -> Response:
    """Prometheus exposition of the server's metrics."""
    return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)
