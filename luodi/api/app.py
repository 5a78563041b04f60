"""``create_app(settings)``: the one place the server is assembled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from luodi.api.admin import build_admin_router
from luodi.api.admin.models import build_models_admin_router
from luodi.api.errors import install_error_handlers
from luodi.api.gateway import get_principal
from luodi.api.health import router as health_router
from luodi.api.knowledge import build_knowledge_router
from luodi.api.knowledge_wiring import KnowledgeAudit, kb_authorizer
from luodi.api.openai.chat import router as chat_router
from luodi.api.openai.completions import router as completions_router
from luodi.api.openai.embeddings import router as embeddings_router
from luodi.api.openai.models import router as models_router
from luodi.api.openai.tokenize import router as tokenize_router
from luodi.api.pii import build_pii_router
from luodi.api.pipeline import build_pipeline
from luodi.api.privacy_admin import build_privacy_admin_router
from luodi.api.request_gate import BodyLimits, RequestGate
from luodi.api.state import AppState
from luodi.apps.risk.routes import build_risk_router
from luodi.apps.support.wiring import install_support
from luodi.chat import ChatTemplate
from luodi.config import Settings
from luodi.config.routing import BackendKind, DeploymentMode
from luodi.console import install_console
from luodi.embedding import Embedder
from luodi.engine.base import Engine, LocalEngine
from luodi.engine.embeddings import build_embedder
from luodi.engine.llamacpp.factory import build_embedded, build_pool
from luodi.engine.metrics import EngineMetrics
from luodi.engine.pool import ModelPool, PooledEngine
from luodi.engine.router import Router
from luodi.errors import ConfigError, LuodiError, ModelLoadError, ServiceUnavailableError
from luodi.knowledge import KnowledgeService
from luodi.knowledge.sync import SyncScheduler
from luodi.privacy import PIIStage
from luodi.security import Gateway, model_opener
from luodi.security.local_guard import LocalGuard

__all__ = ["create_app"]

log = logging.getLogger(__name__)


class _Late:
    """Forwards to a part the lifespan starts: routes are built before it exists."""

    def __init__(self, state: AppState, part: str) -> None:
        self._state = state
        self._part = part

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._state, self._part)
        if target is None:
            raise ServiceUnavailableError(f"{self._part} is not running on this server")
        return getattr(target, name)


def _start_knowledge(state: AppState, settings: Settings) -> SyncScheduler | None:
    """Open the knowledge bases over the first embedding model and start scheduled syncs."""
    if not state.embedders:
        log.warning("knowledge bases are off: no embedding model is served")
        return None
    embedder = next(iter(state.embedders.values()))
    audit = KnowledgeAudit(state.gateway, asyncio.get_running_loop())
    state.knowledge = KnowledgeService(
        settings.knowledge,
        embedder,
        audit=audit,
        redact=_kb_redactor(state, settings),
        serving_busy=state.awaiting.busy,
    )
    scheduler = SyncScheduler(state.knowledge)
    state.background.add(asyncio.get_running_loop().create_task(scheduler.run()))
    return scheduler


def _kb_redactor(state: AppState, settings: Settings) -> Callable[[str], str] | None:
    """Mask documents with the knowledge policy; ingestion runs in worker threads."""
    policy = settings.knowledge.pii_policy
    if policy is None:
        return None
    stage = state.pii
    if stage is None:
        raise ConfigError(f"knowledge.pii_policy={policy!r} needs privacy.enabled=true")
    loop = asyncio.get_running_loop()

    def redact(text: str) -> str:
        coro = stage.protect_text(text, policy=policy, conversation_id="knowledge-ingest")
        done = asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)
        return done.text if done.text is not None else text

    return redact


def _load_embedder(state: AppState, settings: Settings) -> None:
    """Serve the configured embedding model; without its weights, serve none and say how."""
    try:
        embedder = build_embedder(settings.embeddings)
    except ModelLoadError as exc:
        log.warning("/v1/embeddings is off: %s", exc.message)
        return
    state.embedders[embedder.name] = embedder


def _require_pii(state: AppState) -> PIIStage:
    if state.pii is None:
        raise ServiceUnavailableError("pii: the PII stage is disabled (privacy.enabled=false)")
    return state.pii


def _pooled(pool: ModelPool | None, name: str) -> PooledEngine:
    """The pool's engine of ``name``, for a routing backend of kind llamacpp."""
    if pool is None:
        raise ConfigError("a llamacpp backend is configured, but api mode runs no embedded engine")
    try:
        return PooledEngine(pool, pool.get(name).name)
    except LuodiError as exc:
        raise ConfigError(f"a llamacpp backend names {exc.message}") from None


def _publish_adapters(state: AppState, pool: ModelPool) -> None:
    """Serve every name, alias and ``model:adapter`` name of the pool, models registered
    at run time included (a routed model keeps its name)."""
    for name, entry in pool.names.items():
        state.engines.setdefault(name, PooledEngine(pool, entry.name))
    for served, (entry, adapter) in pool.adapter_names().items():
        state.engines.setdefault(served, PooledEngine(pool, entry.name, adapter))


def _require_pool(pool: ModelPool | None) -> ModelPool:
    if pool is None:
        raise ServiceUnavailableError("this server runs no embedded models (api mode)")
    return pool


async def _start_embedded(engine: LocalEngine) -> None:
    """Start the engine and build its chat template now: a bad template fails start-up.

    The engine only reads the template's metadata; the chat package compiles it (and
    caches it for the requests), so a missing template file is found here, not at the
    first chat request.
    """
    await engine.start()
    try:
        ChatTemplate.for_model(engine.template_metadata)
    except BaseException:
        await engine.stop()
        raise


def load_embedded(settings: Settings) -> LocalEngine | None:
    """Load and start the embedded engine now (None in api mode).

    Callers load before the server binds, so a bad or undecryptable model file is
    a one-line error rather than a failure inside the server's start-up.
    """
    if settings.routing.mode is DeploymentMode.API:
        return None
    # Key file permissions, encrypted-only models and a non-dumpable process apply here.
    engine = build_embedded(settings.engine, opener=model_opener(settings.security))
    asyncio.run(_start_embedded(engine))
    return engine


async def _start_pool(
    settings: Settings, default: LocalEngine, metrics: EngineMetrics
) -> ModelPool:
    """The model pool around the started default model; pinned models load here."""
    pool = await asyncio.to_thread(
        build_pool,
        settings.engine,
        default=default,
        start=_start_embedded,
        opener=model_opener(settings.security),
        observer=lambda name: metrics.observer("llamacpp", name),
    )
    await pool.start()
    return pool


def create_app(
    settings: Settings,
    *,
    engines: dict[str, Engine] | None = None,
    embedded: LocalEngine | None = None,
    gateway: Gateway | None = None,
    embedders: dict[str, Embedder] | None = None,
    config_path: Path | None = None,
) -> FastAPI:
    """Build the FastAPI app; engines start in its lifespan and stop with it.

    ``engines`` replaces the configured ones (tests pass an already-started engine);
    ``embedded`` is a started embedded engine to use instead of building one, so the
    CLI can load the model, and fail on a bad file, before the server binds;
    ``gateway`` is a running security gateway to share (tests), else one is built;
    ``config_path`` is the YAML file ``POST /admin/privacy/reload`` re-reads.
    """
    state = AppState(settings=settings)
    owned = engines is None

    metrics = EngineMetrics(state.registry)
    pool: ModelPool | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal embedded, pool
        router: Router | None = None
        state.attach_gateway(gateway or await Gateway.create(settings.security, settings.storage))
        state.pii = PIIStage.from_settings(settings.privacy) if settings.privacy.enabled else None
        if embedders is not None:
            state.embedders.update(embedders)
        else:
            _load_embedder(state, settings)
        scheduler = _start_knowledge(state, settings)
        if state.knowledge is not None:
            # Before serving, not beside it: loading jieba's dictionary holds the
            # interpreter lock for most of a second, which would stall the event loop;
            # later, the first upload or grounded query would wait for it instead.
            await asyncio.to_thread(state.knowledge.warm)
        lent: list[tuple[LocalEngine, Any]] = []  # engines passed in, and their observer before
        if not owned:
            state.engines.update(engines or {})
            for name, engine in state.engines.items():
                if isinstance(engine, LocalEngine):
                    lent.append((engine, engine.observer))
                    engine.observer = metrics.observer("llamacpp", name)
        elif settings.routing.mode is not DeploymentMode.API:
            embedded = embedded or build_embedded(settings.engine)
            await _start_embedded(embedded)
            embedded.observer = metrics.observer("llamacpp", embedded.info.name)
            pool = await _start_pool(settings, embedded, metrics)
            state.engines.update({n: PooledEngine(pool, e.name) for n, e in pool.names.items()})
            _publish_adapters(state, pool)
            pool.on_change(lambda: _publish_adapters(state, _require_pool(pool)))
        if owned and settings.routing.models:
            local, default = pool, embedded.info.name if embedded is not None else ""
            router = Router.from_settings(
                settings.routing,
                metrics=metrics,
                factories={
                    # Names a pooled model by upstream_model; none: the default model.
                    BackendKind.LLAMACPP: lambda _, backend, __: _pooled(
                        local, backend.upstream_model or default
                    )
                },
            )
            await router.start()
            state.engines.update(router.engines())
            state.cloud_models = {
                m for m in settings.routing.models if router.may_leave_premises(m)
            }
        log.info("serving models: %s", ", ".join(state.engines) or "none")
        try:
            yield
        finally:
            # uvicorn has drained or cancelled the requests; let them unwind (close
            # their engine streams, write their audit records) before the parts stop.
            state.drain.abort_all()
            await state.drain.wait_idle(5.0)
            if router is not None:
                await router.stop()
            if pool is not None:
                await pool.stop()
            if embedded is not None:
                await embedded.stop()
            if scheduler is not None:
                scheduler.stop()
            if state.knowledge is not None:
                state.knowledge.close()
            if state.pii is not None:
                await state.pii.close()
            if gateway is None:
                await state.gateway.close()
            for engine, observer in lent:  # the engine outlives this app: hand its metrics back
                engine.observer = observer

    app = FastAPI(
        title="luodi",
        version="0.1.0",
        description="OpenAI-compatible API over private LLM engines.",
        lifespan=lifespan,
    )
    app.state.luodi = state
    state.pipeline = build_pipeline(settings, state)
    install_support(app, state, settings)  # support/<name> assistants: a stage and routes
    # Before CORS is added, so CORS stays outermost and preflights need no key.
    app.add_middleware(
        RequestGate,
        state=lambda: state,
        limits=_body_limits(settings),
        open_paths=_open_paths(settings, app),
    )
    # With auth off, only this machine may call (DNS rebinding, cross-origin writes).
    app.add_middleware(LocalGuard, enabled=not settings.security.auth_enabled)
    if settings.server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    install_error_handlers(app)
    for router in (
        completions_router,
        chat_router,
        embeddings_router,
        models_router,
        tokenize_router,
        health_router,
    ):
        app.include_router(router)
    app.include_router(build_admin_router(cast(Gateway, _Late(state, "gateway"))), prefix="/admin")
    app.include_router(
        build_pii_router(lambda: _require_pii(state), dependencies=[Depends(get_principal)])
    )
    app.include_router(build_privacy_admin_router(config_path))
    app.include_router(
        build_models_admin_router(lambda: state.gateway, lambda: _require_pool(pool))
    )
    app.include_router(
        build_knowledge_router(
            cast(KnowledgeService, _Late(state, "knowledge")), kb_authorizer(state)
        )
    )
    app.include_router(build_risk_router(state))
    install_console(app, state)  # the web console at /console
    return app


def _body_limits(settings: Settings) -> BodyLimits:
    """Per-route body limits: uploads get the upload limit plus multipart framing."""
    upload = {"/v1/knowledge/*/documents": settings.knowledge.max_upload_mb + 1.0}
    return BodyLimits(settings.server.max_body_mb, {**upload, **settings.server.body_limits_mb})


def _open_paths(settings: Settings, app: FastAPI) -> frozenset[str]:
    """Paths that answer without a key: the liveness probe, and what the operator opened."""
    paths = {"/health"}
    if settings.server.open_metrics:
        paths.add("/metrics")
    if settings.server.open_docs:
        docs = (app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
        paths.update(p for p in docs if p)
    return frozenset(paths)
