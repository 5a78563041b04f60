"""The router: one model name, several backends, one Engine to the API.

``Router`` holds every configured model's backends and their health; for each
model it hands the API a ``RoutedEngine`` that implements the Engine contract and
decides, per request, which backend serves it:

* **Tiers.** Healthy primaries first; overflow backends when the primaries are
  saturated (every one at ``max_outstanding`` for longer than
  ``overflow_queue_wait_ms``), slow (time to first token above
  ``overflow_ttft_ms``) or down; fallback backends only when no primary is up.
* **Balancing.** Within a tier, the backend with the fewest outstanding requests
  per unit of weight.
* **Mode.** ``private`` never uses a cloud backend (the config refuses one);
  ``hybrid`` skips a cloud backend whose probed round trip exceeds ``max_rtt_ms``;
  ``api`` routes to cloud backends only.
* **Health.** Consecutive failures (requests or probes) take a backend out;
  ``healthy_after`` successful probes bring it back.
* **Retries.** A request that fails before its first token is sent to the next
  backend, up to ``max_attempts``. A replayable request (non-streaming: the client
  has seen nothing yet) that fails mid-answer is run again, from the start, on
  another backend while it is younger than ``replay_budget_s``. A streamed request
  that fails after its first token ends with one error event. 4xx answers are never
  retried. Each failover is noted in the request's ``failovers`` for the audit record.
* **Suspects.** A backend that failed a request is suspect until its next probe,
  which runs at once: suspects get new work only when no other backend is left. A
  backend that refused the connection is taken out at once.
* **Residency.** A request bound for a cloud backend goes through the
  ``ResidencyGuard`` (the PII stage) unless the gateway already protected it
  (``pii_protected``); with no guard the router refuses to send it.
  The backend that served a request is written to its ``backend``.
* **Planning.** ``RoutedEngine.prepare`` passes messages or text through; a model
  whose every backend is the embedded engine is planned by that engine.
* **The model pool.** A ``llamacpp`` backend is a model of the embedded pool (named
  by its ``upstream_model``), so upstream and embedded models share one name space;
  ``ensure_loaded`` brings an on-demand one into memory before it plans a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from luodi.config.routing import (
    BackendKind,
    BackendRole,
    BackendSettings,
    DeploymentMode,
    Location,
    ModelRoute,
    RoutingSettings,
)
from luodi.engine.base import Engine
from luodi.engine.metrics import EngineMetrics
from luodi.engine.planning import pass_through
from luodi.engine.pool import OnDemand
from luodi.engine.types import (
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    ModelInfo,
    PromptRequest,
)
from luodi.engine.upstream import UpstreamEngine, UpstreamEvent, UpstreamUnavailableError
from luodi.errors import (
    ConfigError,
    LuodiError,
    NotFoundError,
    QueueFullError,
    RequestError,
    ServiceUnavailableError,
)

__all__ = [
    "Backend",
    "BackendFactory",
    "ResidencyGuard",
    "RoutedEngine",
    "Router",
    "residency_required",
]

log = logging.getLogger(__name__)

BackendFactory = Callable[[str, BackendSettings, ModelRoute], Engine]
"""Builds the engine of one backend from (model name, backend settings, model route)."""


class ResidencyGuard(Protocol):
    """Makes a request fit to leave the premises (the gateway's PII stage)."""

    def protect(self, request: GenerationRequest) -> GenerationRequest: ...


def residency_required(backend: BackendSettings | Backend) -> bool:
    """True when requests sent to ``backend`` leave the premises and need PII protection."""
    settings = backend.settings if isinstance(backend, Backend) else backend
    return settings.location is Location.CLOUD


def _upstream_factory(
    metrics: EngineMetrics | None,
) -> BackendFactory:
    def build(model: str, settings: BackendSettings, route: ModelRoute) -> Engine:
        return UpstreamEngine(
            settings, model=model, metrics=metrics, context_length=route.context_length
        )

    return build


class Backend:
    """One backend of one model as the router sees it: engine, load and health."""

    def __init__(self, model: str, settings: BackendSettings, engine: Engine) -> None:
        self.model = model
        self.settings = settings
        self.engine = engine
        self.name = settings.name
        self.healthy = True
        self.outstanding = 0
        self.failures = 0
        self.successes = 0
        self.rtt_s: float | None = None
        self.ttft_s: float | None = None
        """Moving average of time to first token seen through the router."""
        self.slow_until = 0.0
        self.last_error: str | None = None
        self.suspect = False
        """Failed a request since its last probe; chosen only when nothing else is left."""

    @property
    def is_cloud(self) -> bool:
        return self.settings.location is Location.CLOUD

    @property
    def saturated(self) -> bool:
        return self.outstanding >= self.settings.max_outstanding

    def state(self) -> dict[str, object]:
        """What /health and /v1/models show about this backend."""
        return {
            "status": "ok" if self.healthy else "down",
            "kind": self.settings.kind.value,
            "role": self.settings.role.value,
            "location": self.settings.location.value,
            "weight": self.settings.weight,
            "outstanding": self.outstanding,
            "rtt_ms": None if self.rtt_s is None else round(self.rtt_s * 1000, 2),
            "ttft_ms": None if self.ttft_s is None else round(self.ttft_s * 1000, 1),
            "last_error": self.last_error,
        }


class Router:
    """Every routed model's backends, their health checks, and one engine per model.

    Args:
        settings: The ``routing`` section.
        backends: Model name → its backends (``from_settings`` builds them).
        metrics: Where backend health and load are recorded.
        guard: Applied to requests bound for a cloud backend that the gateway has
            not marked ``pii_protected``.
    """

    def __init__(
        self,
        settings: RoutingSettings,
        backends: Mapping[str, list[Backend]],
        *,
        metrics: EngineMetrics | None = None,
        guard: ResidencyGuard | None = None,
    ) -> None:
        self.settings = settings
        self.backends = dict(backends)
        self.metrics = metrics
        self.guard = guard
        self._released = asyncio.Condition()
        self._waiting: dict[str, int] = {}
        self._health_task: asyncio.Task[None] | None = None
        self._probes: dict[str, asyncio.Task[None]] = {}
        """Backend → the probe a failed request started, while it runs."""
        self._engines = {
            model: RoutedEngine(self, model, settings.models[model].context_length)
            for model in self.backends
        }

    @classmethod
    def from_settings(
        cls,
        settings: RoutingSettings,
        *,
        metrics: EngineMetrics | None = None,
        guard: ResidencyGuard | None = None,
        factories: Mapping[BackendKind, BackendFactory] | None = None,
    ) -> Router:
        """Build every backend with the factory of its kind.

        vllm, sglang and openai default to ``UpstreamEngine``; a ``llamacpp``
        backend needs a factory from the caller (it owns the embedded engine).
        Raises ConfigError when a kind has no factory.
        """
        upstream = _upstream_factory(metrics)
        registry: dict[BackendKind, BackendFactory] = {
            BackendKind.VLLM: upstream,
            BackendKind.SGLANG: upstream,
            BackendKind.OPENAI: upstream,
        }
        registry.update(factories or {})
        built: dict[str, list[Backend]] = {}
        for model, route in settings.models.items():
            for backend in route.backends:
                factory = registry.get(backend.kind)
                if factory is None:
                    raise ConfigError(
                        f"model '{model}': no engine factory for backend '{backend.name}'"
                        f" of kind {backend.kind.value}"
                    )
                engine = factory(model, backend, route)
                built.setdefault(model, []).append(Backend(model, backend, engine))
        return cls(settings, built, metrics=metrics, guard=guard)

    @property
    def mode(self) -> DeploymentMode:
        return self.settings.mode

    def engine(self, model: str) -> RoutedEngine:
        """The Engine serving ``model``; 404 naming the routed models."""
        found = self._engines.get(model)
        if found is None:
            raise NotFoundError(
                f"the model '{model}' is not routed; routed models: {', '.join(self._engines)}",
                param="model",
                code="model_not_found",
            )
        return found

    def engines(self) -> dict[str, RoutedEngine]:
        """Model name → its routed engine, for ``AppState.engines``."""
        return dict(self._engines)

    def may_leave_premises(self, model: str) -> bool:
        """True when some request for ``model`` can reach a cloud backend."""
        return any(b.is_cloud for b in self.backends.get(model, []))

    async def start(self, *, health_loop: bool = True) -> None:
        """Start every backend engine, probe them once, then keep probing."""
        for backend in self._all():
            await backend.engine.start()
        await self.check_health()
        if health_loop and self._health_task is None:
            self._health_task = asyncio.get_running_loop().create_task(self._health_loop())

    async def stop(self) -> None:
        """Stop probing and stop every backend engine."""
        task, self._health_task = self._health_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for probe in list(self._probes.values()):
            probe.cancel()
        for backend in self._all():
            await backend.engine.stop()

    async def check_health(self) -> None:
        """Probe every backend once and update who is in rotation."""
        await asyncio.gather(*(self._probe(b) for b in self._all()))

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_interval_s)
            await self.check_health()

    async def _probe(self, backend: Backend) -> None:
        engine = backend.engine
        if isinstance(engine, UpstreamEngine):
            result = await engine.probe(self.settings.health_timeout_s)
            backend.rtt_s = result.rtt_s
            ok, error = result.ok, result.error
        else:
            status = engine.health().get("status")
            ok, error = status == "ok", None if status == "ok" else f"status {status}"
        backend.suspect = False
        if ok:
            backend.failures = 0
            backend.successes += 1
            if not backend.healthy and backend.successes >= self.settings.healthy_after:
                log.info("backend %s of %s is back in rotation", backend.name, backend.model)
                backend.healthy = True
        else:
            self._failed(backend, error or "probe failed")
        self._report(backend)

    def _failed(self, backend: Backend, error: str, *, at_once: bool = False) -> None:
        """Count a failure; ``unhealthy_after`` of them, or one ``at_once``, take it out."""
        backend.successes = 0
        backend.failures += 1
        if at_once:  # nothing listens there: probes bring it back
            backend.failures = max(backend.failures, self.settings.unhealthy_after)
        backend.last_error = error
        if backend.healthy and backend.failures >= self.settings.unhealthy_after:
            log.warning("backend %s of %s taken out: %s", backend.name, backend.model, error)
            backend.healthy = False
        self._report(backend)

    def _suspect(self, backend: Backend) -> None:
        """Probe ``backend`` now instead of at the next health interval."""
        backend.suspect = True
        key = f"{backend.model}/{backend.name}"
        if key in self._probes:
            return
        task = asyncio.get_running_loop().create_task(self._probe(backend))
        self._probes[key] = task
        task.add_done_callback(lambda _: self._probes.pop(key, None))

    def _mark_failed(self, backend: Backend, error: BaseException | str) -> str:
        """Count a failed request against ``backend``; returns what went wrong."""
        message = error.message if isinstance(error, LuodiError) else str(error)
        refused = isinstance(error, UpstreamUnavailableError) and error.kind == "connect"
        self._failed(backend, message, at_once=refused)
        if backend.healthy:
            self._suspect(backend)
        return message

    @staticmethod
    def _note_failover(backend: Backend, request: GenerationRequest, message: str) -> str:
        """Note on ``request`` (for its audit record) that ``backend`` failed it."""
        reason = f"{backend.name}: {message}"
        request.failovers.append(reason)
        return reason

    def _report(self, backend: Backend) -> None:
        if self.metrics is not None:
            self.metrics.set_health(
                backend.name, backend.model, up=backend.healthy, rtt_s=backend.rtt_s
            )

    def _all(self) -> list[Backend]:
        return [b for group in self.backends.values() for b in group]

    # -- choosing ---------------------------------------------------------------

    def _usable(self, backend: Backend, tried: set[str]) -> bool:
        if backend.name in tried or not backend.healthy:
            return False
        if self.mode is DeploymentMode.API and not backend.is_cloud:
            return False
        if self.mode is DeploymentMode.PRIVATE and backend.is_cloud:
            return False
        if self.mode is DeploymentMode.HYBRID and backend.is_cloud and backend.rtt_s is not None:
            return backend.rtt_s * 1000 <= self.settings.max_rtt_ms
        return True

    @staticmethod
    def _least_loaded(candidates: list[Backend]) -> Backend:
        return min(
            candidates,
            key=lambda b: (b.suspect, b.outstanding / b.settings.weight, b.outstanding),
        )

    async def choose(self, model: str, tried: set[str]) -> Backend | None:
        """The backend for the next attempt of a request, or None when none is left."""
        group = [b for b in self.backends[model] if self._usable(b, tried)]
        by_role = {role: [b for b in group if b.settings.role is role] for role in BackendRole}
        primaries, overflow = by_role[BackendRole.PRIMARY], by_role[BackendRole.OVERFLOW]
        if not primaries:
            spare = overflow or by_role[BackendRole.FALLBACK]
            return self._least_loaded(spare) if spare else None
        now = time.monotonic()
        if overflow and all(now < b.slow_until for b in primaries):
            return self._least_loaded(overflow)
        free = [b for b in primaries if not b.saturated]
        if free:
            return self._least_loaded(free)
        if not overflow:
            return self._least_loaded(primaries)  # the upstreams queue the excess
        if await self._wait_for_slot(model, primaries):
            return self._least_loaded([b for b in primaries if not b.saturated] or primaries)
        return self._least_loaded(overflow)

    async def _wait_for_slot(self, model: str, primaries: list[Backend]) -> bool:
        """Wait up to ``overflow_queue_wait_ms`` for a saturated primary to free a slot."""
        timeout = self.settings.overflow_queue_wait_ms / 1000
        self._waiting[model] = self._waiting.get(model, 0) + 1
        self._report_load(model)
        try:
            async with self._released:
                async with asyncio.timeout(timeout):
                    await self._released.wait_for(lambda: any(not b.saturated for b in primaries))
        except TimeoutError:
            return False
        finally:
            self._waiting[model] -= 1
            self._report_load(model)
        return True

    def _acquire(self, backend: Backend) -> None:
        backend.outstanding += 1
        self._report_load(backend.model)

    async def _release(self, backend: Backend) -> None:
        backend.outstanding -= 1
        self._report_load(backend.model)
        async with self._released:
            self._released.notify_all()

    def _report_load(self, model: str) -> None:
        """Router-level load under ``backend="router"``: the queue depth the HPA scales on."""
        if self.metrics is not None:
            running = sum(b.outstanding for b in self.backends.get(model, []))
            waiting = self._waiting.get(model, 0)
            self.metrics.set_load("router", model, running=running, waiting=waiting)

    def _observe_ttft(self, backend: Backend, seconds: float) -> None:
        backend.ttft_s = seconds if backend.ttft_s is None else 0.8 * backend.ttft_s + 0.2 * seconds
        if seconds * 1000 > self.settings.overflow_ttft_ms:
            # Slow: send new work elsewhere for a while, then let one request re-measure.
            backend.slow_until = time.monotonic() + self.settings.health_interval_s
        else:
            backend.slow_until = 0.0

    # -- serving ----------------------------------------------------------------

    def _prepare(self, backend: Backend, request: GenerationRequest) -> GenerationRequest:
        """The request as it may be sent to ``backend`` (protected if it leaves the premises)."""
        if not residency_required(backend) or request.pii_protected:
            return request
        if self.guard is None:
            raise ServiceUnavailableError(
                f"refusing to send an unprotected prompt to cloud backend '{backend.name}':"
                " no PII stage is configured"
            )
        protected = self.guard.protect(request)
        protected.pii_protected = True
        return protected

    async def generate(
        self, model: str, request: GenerationRequest
    ) -> AsyncIterator[GenerationEvent]:
        """Route one request (see the module docstring)."""
        tried: set[str] = set()
        reasons: list[str] = []
        for _ in range(self.settings.max_attempts):
            backend = await self.choose(model, tried)
            if backend is None:
                break
            tried.add(backend.name)
            outgoing = self._prepare(backend, request)
            request.backend = backend.name
            self._acquire(backend)
            started = time.monotonic()
            stream = backend.engine.generate(outgoing)
            try:
                try:
                    first = await anext(stream)
                except QueueFullError as exc:  # saturated, not broken: try the next one
                    reasons.append(f"{backend.name}: {exc.message}")
                    continue
                except RequestError:
                    raise
                except (LuodiError, OSError) as exc:
                    message = self._mark_failed(backend, exc)
                    reasons.append(self._note_failover(backend, request, message))
                    continue
                if first.finish_reason is FinishReason.ERROR:
                    message = self._mark_failed(backend, first.error or "error")
                    reasons.append(self._note_failover(backend, request, message))
                    continue
                self._observe_ttft(backend, time.monotonic() - started)
                backend.failures = 0
                relay = self._relay(backend, first, stream)
                if not request.replayable:
                    async for event in relay:
                        yield event
                    return
                # Nothing reaches the client before the end, so a failure mid-answer can
                # still be replayed elsewhere: hold the events until the last one.
                events = [event async for event in relay]
                last = events[-1]
                if last.finish_reason is not FinishReason.ERROR:
                    for event in events:
                        yield event
                    return
                reasons.append(self._note_failover(backend, request, last.error or "error"))
                age = time.monotonic() - request.arrival_time
                if age >= self.settings.replay_budget_s:
                    reasons.append(
                        f"not replayed: the request is {age:.1f}s old"
                        f" (routing.replay_budget_s {self.settings.replay_budget_s:g})"
                    )
                    break
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]
                await self._release(backend)
        detail = "; ".join(reasons) or "no backend is healthy"
        raise ServiceUnavailableError(
            f"no backend could serve model '{model}' ({detail})", retry_after=1.0
        )

    async def _relay(
        self, backend: Backend, first: GenerationEvent, stream: AsyncIterator[GenerationEvent]
    ) -> AsyncIterator[GenerationEvent]:
        """Pass a started stream through; a failure becomes one clean error event."""
        event = first
        rid = first.request_id
        try:
            while True:
                if isinstance(event, UpstreamEvent):
                    event.backend = backend.name
                if event.finish_reason is FinishReason.ERROR:
                    self._mark_failed(backend, event.error or "error")
                yield event
                if event.finished:
                    return
                event = await anext(stream)
        except StopAsyncIteration:
            message = f"backend '{backend.name}' ended the stream without a finish reason"
        except LuodiError as exc:
            message = f"backend '{backend.name}' failed mid-stream: {exc.message}"
        self._mark_failed(backend, message)
        yield UpstreamEvent(
            rid, finish_reason=FinishReason.ERROR, error=message, backend=backend.name
        )

    def prepare(self, model: str, request: PromptRequest) -> list[GenerationRequest]:
        """Plan a request for ``model``: which backend serves it is decided per attempt.

        A model served only by embedded engines is planned by the first (the factory
        hands every one the same engine); any other is passed through, as every
        upstream renders and tokenizes for itself.
        """
        group = self.backends[model]
        if group and all(b.settings.kind is BackendKind.LLAMACPP for b in group):
            return group[0].engine.prepare(request)
        return pass_through(request)

    async def ensure_loaded(self, model: str) -> None:
        """Load the embedded model that plans ``model``'s requests, if it is on demand."""
        group = self.backends[model]
        if group and all(b.settings.kind is BackendKind.LLAMACPP for b in group):
            engine = group[0].engine
            if isinstance(engine, OnDemand):
                await engine.ensure_loaded()

    def abort(self, model: str, request_id: str) -> None:
        """Abort ``request_id`` on whichever backend of ``model`` runs it."""
        for backend in self.backends.get(model, []):
            backend.engine.abort(request_id)

    def health(self, model: str) -> dict[str, object]:
        """The model's state and each backend's, for /health."""
        group = self.backends[model]
        usable = [b for b in group if self._usable(b, set())]
        return {
            "status": "ok" if usable else "down",
            "mode": self.mode.value,
            "backends": {b.name: b.state() for b in group},
        }


@dataclass
class RoutedEngine:
    """The Engine the API sees for one routed model; all decisions are the router's."""

    router: Router
    model: str
    context_length: int

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self.model,
            context_length=self.context_length,
            backend=f"router:{self.router.mode.value}",
        )

    async def start(self) -> None:
        """No-op: ``Router.start`` starts every backend once."""

    async def stop(self) -> None:
        """No-op: ``Router.stop`` stops every backend once."""

    async def ensure_loaded(self) -> None:
        """Bring the embedded model that plans this model's requests into memory."""
        await self.router.ensure_loaded(self.model)

    def prepare(self, request: PromptRequest) -> list[GenerationRequest]:
        return self.router.prepare(self.model, request)

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        return self.router.generate(self.model, request)

    def abort(self, request_id: str) -> None:
        self.router.abort(self.model, request_id)

    def health(self) -> dict[str, object]:
        return self.router.health(self.model)
