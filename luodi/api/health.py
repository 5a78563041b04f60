"""GET /health and GET /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from luodi.api.deps import StateDep
from luodi.api.gateway import get_principal
from luodi.errors import LuodiError

__all__ = ["router"]

router = APIRouter()


@router.get("/health")
async def health(state: StateDep, request: Request) -> JSONResponse:
    """200 when every backend is healthy, 503 otherwise (or while draining at shutdown).

    Anyone may ask (it is the liveness probe), but only a caller with a valid key, or
    any caller when auth is off, sees the per-model detail: backends, addresses, errors.
    """
    backends: dict[str, Any] = {name: engine.health() for name, engine in state.engines.items()}
    ok = all(b.get("status") == "ok" for b in backends.values())
    status = "draining" if state.drain.draining else "ok" if ok else "degraded"
    body: dict[str, Any] = {"status": status}
    if not state.settings.security.auth_enabled or await _has_key(request):
        body["models"] = backends
    return JSONResponse(body, status_code=200 if status == "ok" else 503)


async def _has_key(request: Request) -> bool:
    if "authorization" not in request.headers:
        return False
    try:
        await get_principal(request, request.app.state.luodi)
    except LuodiError:
        return False
    return True


@router.get("/metrics")
async def metrics(state: StateDep, request: Request) -> Response:
    """Prometheus exposition of the server's metrics (``metrics:read``, or open by config)."""
    if not state.settings.server.open_metrics:
        state.gateway.authorize(await get_principal(request, state), "metrics:read")
    return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)
