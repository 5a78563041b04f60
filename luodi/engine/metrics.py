"""One Prometheus metric schema for every backend, embedded or upstream.

Every series carries the labels ``backend`` (the backend's configured name, e.g.
``llamacpp``, ``vllm-0``, ``dashscope``) and ``model`` (the name clients use), so
one Grafana dashboard (``deploy/grafana/luodi-dashboard.json``) serves private,
hybrid and API deployments alike.

==========================================  =========  ==============================
name                                        type       extra labels
==========================================  =========  ==============================
luodi_request_queue_time_seconds            histogram
luodi_time_to_first_token_seconds           histogram
luodi_inter_token_latency_seconds           histogram
luodi_e2e_request_latency_seconds           histogram
luodi_batch_size                            histogram  (embedded engine only)
luodi_engine_step_seconds                   histogram  kind (embedded engine only)
luodi_prompt_tokens_total                   counter
luodi_generation_tokens_total               counter
luodi_prefix_cache_hit_tokens_total         counter    (embedded engine only)
luodi_requests_total                        counter    finish_reason
luodi_request_errors_total                  counter    kind
luodi_num_requests_running                  gauge
luodi_num_requests_waiting                  gauge
luodi_backend_up                            gauge      (1 healthy, 0 taken out)
luodi_backend_rtt_seconds                   gauge      (last health-probe round trip)
==========================================  =========  ==============================
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from luodi.engine.observer import STEP_KINDS, StepKind

__all__ = ["METRIC_NAMES", "STEP_KINDS", "BackendObserver", "EngineMetrics"]

_LABELS = ("backend", "model")

_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
_TOKEN_LATENCY_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15,
    0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip
_E2E_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0, 120.0, 300.0, 600.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256)
_STEP_BUCKETS = (
    0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.125, 0.15, 0.175, 0.2,
    0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip

METRIC_NAMES: tuple[str, ...] = (
    "luodi_request_queue_time_seconds",
    "luodi_time_to_first_token_seconds",
    "luodi_inter_token_latency_seconds",
    "luodi_e2e_request_latency_seconds",
    "luodi_batch_size",
    "luodi_engine_step_seconds",
    "luodi_prompt_tokens_total",
    "luodi_generation_tokens_total",
    "luodi_prefix_cache_hit_tokens_total",
    "luodi_spec_decode_draft_tokens_total",
    "luodi_spec_decode_accepted_tokens_total",
    "luodi_requests_total",
    "luodi_request_errors_total",
    "luodi_num_requests_running",
    "luodi_num_requests_waiting",
    "luodi_backend_up",
    "luodi_backend_rtt_seconds",
)
"""Every exposed sample family, as Prometheus shows it (dashboards rely on these)."""


class EngineMetrics:
    """The metric families, registered once on ``registry``; observe through the methods.

    One instance per server. Backends share it and tell themselves apart by the
    ``backend`` label; the methods are cheap and safe from any thread.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.queue_time = Histogram(
            "luodi_request_queue_time_seconds",
            "Seconds a request waited before its backend started it.",
            _LABELS, registry=registry, buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.ttft = Histogram(
            "luodi_time_to_first_token_seconds",
            "Seconds from arrival to the first generated token.",
            _LABELS, registry=registry, buckets=_LATENCY_BUCKETS,
        )  # fmt: skip
        self.itl = Histogram(
            "luodi_inter_token_latency_seconds",
            "Seconds between two consecutive tokens of one request.",
            _LABELS, registry=registry, buckets=_TOKEN_LATENCY_BUCKETS,
        )  # fmt: skip
        self.e2e = Histogram(
            "luodi_e2e_request_latency_seconds",
            "Seconds from arrival to the last event of a request.",
            _LABELS, registry=registry, buckets=_E2E_BUCKETS,
        )  # fmt: skip
        self.batch_size = Histogram(
            "luodi_batch_size",
            "Sequences decoded together in one engine step (embedded engine).",
            _LABELS, registry=registry, buckets=_BATCH_BUCKETS,
        )  # fmt: skip
        self.step_seconds = Histogram(
            "luodi_engine_step_seconds",
            "Seconds one llama_decode of a step took, by kind: decode, mixed, prefill.",
            (*_LABELS, "kind"), registry=registry, buckets=_STEP_BUCKETS,
        )  # fmt: skip
        self.prompt_tokens = Counter(
            "luodi_prompt_tokens", "Prompt tokens processed.", _LABELS, registry=registry
        )
        self.generation_tokens = Counter(
            "luodi_generation_tokens", "Tokens generated.", _LABELS, registry=registry
        )
        self.draft_tokens = Counter(
            "luodi_spec_decode_draft_tokens",
            "Draft tokens decoded by speculative decoding (embedded engine).",
            _LABELS,
            registry=registry,
        )
        self.accepted_tokens = Counter(
            "luodi_spec_decode_accepted_tokens",
            "Draft tokens the model agreed with and kept.",
            _LABELS,
            registry=registry,
        )
        self.prefix_cache_hits = Counter(
            "luodi_prefix_cache_hit_tokens",
            "Prompt tokens served from the prefix cache instead of computed.",
            _LABELS,
            registry=registry,
        )
        self.requests = Counter(
            "luodi_requests",
            "Finished requests by finish reason (stop, length, tool_calls, cancelled, error).",
            (*_LABELS, "finish_reason"),
            registry=registry,
        )
        self.errors = Counter(
            "luodi_request_errors",
            "Errors by kind (connect, timeout, http_5xx, http_4xx, stream, engine).",
            (*_LABELS, "kind"),
            registry=registry,
        )
        self.running = Gauge(
            "luodi_num_requests_running", "Requests generating now.", _LABELS, registry=registry
        )
        self.waiting = Gauge(
            "luodi_num_requests_waiting",
            "Requests waiting to be started.",
            _LABELS,
            registry=registry,
        )
        self.up = Gauge(
            "luodi_backend_up",
            "1 when the backend is in rotation, 0 when health checks took it out.",
            _LABELS,
            registry=registry,
        )
        self.rtt = Gauge(
            "luodi_backend_rtt_seconds",
            "Round trip of the backend's last health probe.",
            _LABELS,
            registry=registry,
        )

    def observe_queue_wait(self, backend: str, model: str, seconds: float) -> None:
        """Record how long one request waited before its backend started it."""
        self.queue_time.labels(backend, model).observe(max(0.0, seconds))

    def observe_ttft(self, backend: str, model: str, seconds: float) -> None:
        """Record one request's time to first token."""
        self.ttft.labels(backend, model).observe(max(0.0, seconds))

    def observe_inter_token(self, backend: str, model: str, seconds: float) -> None:
        """Record the gap between two consecutive tokens of one request."""
        self.itl.labels(backend, model).observe(max(0.0, seconds))

    def observe_batch(self, backend: str, model: str, batch_size: int) -> None:
        """Record the number of sequences in one engine step."""
        self.batch_size.labels(backend, model).observe(batch_size)

    def observe_step(self, backend: str, model: str, kind: StepKind, seconds: float) -> None:
        """Record how long one engine step's decode took, by what it carried."""
        self.step_seconds.labels(backend, model, kind).observe(seconds)

    def add_prefix_cache_hit(self, backend: str, model: str, tokens: int) -> None:
        """Count prompt tokens reused from the prefix cache."""
        if tokens > 0:
            self.prefix_cache_hits.labels(backend, model).inc(tokens)

    def add_drafts(self, backend: str, model: str, drafted: int, accepted: int) -> None:
        """Count speculative draft tokens decoded, and those the model kept."""
        self.draft_tokens.labels(backend, model).inc(drafted)
        self.accepted_tokens.labels(backend, model).inc(accepted)

    def observe_finished(
        self,
        backend: str,
        model: str,
        *,
        reason: str,
        prompt_tokens: int,
        completion_tokens: int,
        e2e_s: float,
    ) -> None:
        """Record a finished request: its finish reason, token counts and e2e latency."""
        self.requests.labels(backend, model, reason).inc()
        if prompt_tokens > 0:
            self.prompt_tokens.labels(backend, model).inc(prompt_tokens)
        if completion_tokens > 0:
            self.generation_tokens.labels(backend, model).inc(completion_tokens)
        self.e2e.labels(backend, model).observe(max(0.0, e2e_s))

    def count_error(self, backend: str, model: str, kind: str) -> None:
        """Count one error of ``kind`` (connect, timeout, http_5xx, http_4xx, stream, engine)."""
        self.errors.labels(backend, model, kind).inc()

    def set_load(self, backend: str, model: str, *, running: int, waiting: int) -> None:
        """Set how many requests a backend is running and how many wait."""
        self.running.labels(backend, model).set(running)
        self.waiting.labels(backend, model).set(waiting)

    def set_health(self, backend: str, model: str, *, up: bool, rtt_s: float | None) -> None:
        """Set whether a backend is in rotation and its last probe's round trip."""
        self.up.labels(backend, model).set(1 if up else 0)
        if rtt_s is not None:
            self.rtt.labels(backend, model).set(rtt_s)

    def observer(self, backend: str, model: str) -> BackendObserver:
        """An ``EngineObserver`` for the embedded engine that writes into these metrics."""
        return BackendObserver(self, backend, model)


class BackendObserver:
    """Implements ``luodi.engine.observer.EngineObserver`` over ``EngineMetrics``.

    The embedded engine calls it from its one engine thread, between two decodes of
    every step, so the per-step and per-token series are resolved once, not per call.
    """

    def __init__(self, metrics: EngineMetrics, backend: str, model: str) -> None:
        self._metrics = metrics
        self._backend = backend
        self._model = model
        self._batch_size = metrics.batch_size.labels(backend, model)
        self._step = {k: metrics.step_seconds.labels(backend, model, k) for k in STEP_KINDS}
        self._itl = metrics.itl.labels(backend, model)
        self._drafted = metrics.draft_tokens.labels(backend, model)
        self._accepted = metrics.accepted_tokens.labels(backend, model)

    def on_queued(self, waiting: int, running: int) -> None:
        self._metrics.set_load(self._backend, self._model, running=running, waiting=waiting)

    def on_admitted(self, queue_wait_s: float, cached_tokens: int) -> None:
        self._metrics.observe_queue_wait(self._backend, self._model, queue_wait_s)
        self._metrics.add_prefix_cache_hit(self._backend, self._model, cached_tokens)

    def on_step(
        self, batch_size: int, n_tokens: int, seconds: float, kind: StepKind = "decode"
    ) -> None:
        self._batch_size.observe(batch_size)
        self._step[kind].observe(seconds)

    def on_first_token(self, ttft_s: float) -> None:
        self._metrics.observe_ttft(self._backend, self._model, ttft_s)

    def on_token(self, itl_s: float) -> None:
        self._itl.observe(max(0.0, itl_s))

    def on_draft(self, drafted: int, accepted: int) -> None:
        self._drafted.inc(drafted)
        self._accepted.inc(accepted)

    def on_finished(
        self, reason: str, prompt_tokens: int, completion_tokens: int, e2e_s: float
    ) -> None:
        self._metrics.observe_finished(
            self._backend,
            self._model,
            reason=reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            e2e_s=e2e_s,
        )
        if reason == "error":
            self._metrics.count_error(self._backend, self._model, "engine")
