"""The model pool's admin API: list, load and unload embedded models (``luodi model ps``).

``GET /admin/models`` needs ``models:read``; loading, unloading, registering a model
(``POST /admin/models``, from ``engine.pool.model_dir`` only) and adding a LoRA
adapter (``POST /admin/models/{name}/adapters``, from ``engine.pool.adapter_dir``
only) need ``models:manage``. Each call is authorized and audited through
``Gateway.admin_action`` like every other admin route; the pool's own work runs on
the server's event loop (a load on its engine thread), never in the request's worker.
"""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import APIRouter, Request

from luodi.api.gateway import PrincipalDep, client_ip
from luodi.config.models import AdapterSettings, EmbeddedModelSettings
from luodi.engine.pool import ModelPool
from luodi.security import Gateway

__all__ = ["build_models_admin_router"]

T = TypeVar("T")


def build_models_admin_router(
    gateway: Callable[[], Gateway], pool: Callable[[], ModelPool]
) -> APIRouter:
    """Routes under ``/admin/models``, over the pool ``pool()`` returns once serving."""
    router = APIRouter(tags=["admin"])

    async def act(
        request: Request,
        actor: Any,
        action: str,
        permission: str,
        detail: dict[str, Any],
        work: Callable[[], Coroutine[Any, Any, T]],
    ) -> T:
        loop = asyncio.get_running_loop()

        def run() -> T:
            # admin_action runs this in a worker thread: the pool lives on the loop.
            return asyncio.run_coroutine_threadsafe(work(), loop).result()

        return await gateway().admin_action(
            actor,
            action=action,
            permission=permission,
            detail=detail,
            run=run,
            source_ip=client_ip(request),
        )

    @router.get("/admin/models")
    async def list_models(request: Request, actor: PrincipalDep) -> dict[str, Any]:
        """The memory budget and every embedded model: state, memory, requests in flight."""
        target = pool()

        async def describe() -> dict[str, Any]:
            return target.describe()

        return await act(request, actor, "models.list", "models:read", {}, describe)

    @router.post("/admin/models/{name:path}/load")
    async def load_model(name: str, request: Request, actor: PrincipalDep) -> dict[str, Any]:
        """Load a model now (a no-op when loaded); 507 when it cannot fit."""
        target = pool()

        async def load() -> dict[str, Any]:
            return (await target.load(name)).describe()

        return await act(request, actor, "models.load", "models:manage", {"model": name}, load)

    @router.post("/admin/models/{name:path}/unload")
    async def unload_model(name: str, request: Request, actor: PrincipalDep) -> dict[str, Any]:
        """Unload a model now; 503 while requests run on it."""
        target = pool()

        async def unload() -> dict[str, Any]:
            return (await target.unload(name)).describe()

        return await act(request, actor, "models.unload", "models:manage", {"model": name}, unload)

    @router.post("/admin/models", status_code=201)
    async def register_model(
        body: EmbeddedModelSettings, request: Request, actor: PrincipalDep
    ) -> dict[str, Any]:
        """Serve one more GGUF (a new version, a fine-tuned file) without a restart.

        Its file must lie in ``engine.pool.model_dir``; it loads on its first request.
        """
        target = pool()

        async def register() -> dict[str, Any]:
            return (await target.register(body)).describe()

        detail = {"model": body.name, "path": str(body.path), "aliases": body.aliases}
        return await act(request, actor, "models.register", "models:manage", detail, register)

    @router.post("/admin/models/{name:path}/adapters", status_code=201)
    async def add_adapter(
        name: str, body: AdapterSettings, request: Request, actor: PrincipalDep
    ) -> dict[str, Any]:
        """Load a LoRA adapter into a model while it serves: requests name ``model:adapter``."""
        target = pool()

        async def add() -> dict[str, Any]:
            return (await target.add_adapter(name, body)).describe()

        detail = {"model": name, "adapter": body.name, "path": str(body.path), "scale": body.scale}
        return await act(request, actor, "models.adapters.add", "models:manage", detail, add)

    return router
