"""``create_app(settings)``: the one place the server is assembled."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from luodi.api.errors import install_error_handlers
from luodi.api.health import router as health_router
from luodi.api.openai.chat import router as chat_router
from luodi.api.openai.completions import router as completions_router
from luodi.api.openai.models import router as models_router
from luodi.api.state import AppState
from luodi.config import Settings
from luodi.engine.base import Engine
from luodi.engine.llamacpp.engine import LlamaCppEngine

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, engines: dict[str, Engine] | None = None) -> FastAPI:
    """Build the FastAPI app; engines start in its lifespan and stop with it.

    ``engines`` replaces the configured ones (tests pass an already-started engine).
    """
    state = AppState(settings=settings)
    owned = engines is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owned:
            engine = LlamaCppEngine(settings.engine)
            await engine.start()
            state.engines[engine.info.name] = engine
        else:
            state.engines.update(engines or {})
        log.info("serving models: %s", ", ".join(state.engines))
        try:
            yield
        finally:
            if owned:
                for engine in state.engines.values():
                    await engine.stop()

    app = FastAPI(
        title="luodi",
        version="0.1.0",
        description="OpenAI-compatible API over private LLM engines.",
        lifespan=lifespan,
    )
    app.state.luodi = state
    if settings.server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    install_error_handlers(app)
    for router in (completions_router, chat_router, models_router, health_router):
        app.include_router(router)
    return app
