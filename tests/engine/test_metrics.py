"""The one metric schema: same names for every backend, told apart by labels."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from luodi.engine.metrics import METRIC_NAMES, EngineMetrics
from luodi.engine.observer import EngineObserver


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_embedded_and_upstream_backends_share_metric_names() -> None:
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry)
    for backend in ("llamacpp", "vllm-0"):
        metrics.observe_ttft(backend, "qwen3", 0.2)
        metrics.observe_finished(
            backend, "qwen3", reason="stop", prompt_tokens=10, completion_tokens=5, e2e_s=1.0
        )
    for backend in ("llamacpp", "vllm-0"):
        labels = {"backend": backend, "model": "qwen3"}
        assert _value(registry, "luodi_time_to_first_token_seconds_count", **labels) == 1
        assert _value(registry, "luodi_prompt_tokens_total", **labels) == 10
        assert _value(registry, "luodi_generation_tokens_total", **labels) == 5
        assert _value(registry, "luodi_requests_total", finish_reason="stop", **labels) == 1


def test_every_documented_metric_family_is_exposed() -> None:
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry)
    metrics.observe_queue_wait("b", "m", 0.01)
    metrics.observe_ttft("b", "m", 0.01)
    metrics.observe_inter_token("b", "m", 0.01)
    metrics.observe_batch("b", "m", 4)
    metrics.observe_step("b", "m", "mixed", 0.2)
    metrics.add_prefix_cache_hit("b", "m", 32)
    metrics.add_drafts("b", "m", drafted=8, accepted=5)
    metrics.observe_finished("b", "m", reason="stop", prompt_tokens=1, completion_tokens=1, e2e_s=1)
    metrics.count_error("b", "m", "connect")
    metrics.set_load("b", "m", running=1, waiting=2)
    metrics.set_health("b", "m", up=True, rtt_s=0.004)
    text = generate_latest(registry).decode()
    for name in METRIC_NAMES:
        assert f"\n{name}" in text or text.startswith(name), name


def test_embedded_engine_observer_fills_the_same_schema() -> None:
    registry = CollectorRegistry()
    observer: EngineObserver = EngineMetrics(registry).observer("llamacpp", "gemma")
    observer.on_queued(waiting=3, running=2)
    observer.on_admitted(queue_wait_s=0.05, cached_tokens=16)
    observer.on_step(batch_size=2, n_tokens=40, seconds=0.01, kind="prefill")
    observer.on_first_token(ttft_s=0.1)
    observer.on_step(batch_size=2, n_tokens=2, seconds=0.01)
    observer.on_step(batch_size=3, n_tokens=20, seconds=0.03, kind="mixed")
    observer.on_token(0.02)
    observer.on_draft(drafted=6, accepted=4)
    observer.on_finished("error", prompt_tokens=8, completion_tokens=2, e2e_s=0.3)
    labels = {"backend": "llamacpp", "model": "gemma"}
    assert _value(registry, "luodi_spec_decode_draft_tokens_total", **labels) == 6
    assert _value(registry, "luodi_spec_decode_accepted_tokens_total", **labels) == 4
    assert _value(registry, "luodi_num_requests_waiting", **labels) == 3
    assert _value(registry, "luodi_prefix_cache_hit_tokens_total", **labels) == 16
    for kind, seconds in (("prefill", 0.01), ("decode", 0.01), ("mixed", 0.03)):
        assert _value(registry, "luodi_engine_step_seconds_count", kind=kind, **labels) == 1
        assert _value(registry, "luodi_engine_step_seconds_sum", kind=kind, **labels) == seconds
    assert _value(registry, "luodi_batch_size_count", **labels) == 3
    assert _value(registry, "luodi_inter_token_latency_seconds_count", **labels) == 1
    assert _value(registry, "luodi_request_errors_total", kind="engine", **labels) == 1
    assert _value(registry, "luodi_requests_total", finish_reason="error", **labels) == 1


def test_unhealthy_backend_shows_as_down() -> None:
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry)
    metrics.set_health("cloud", "qwen3", up=False, rtt_s=None)
    assert _value(registry, "luodi_backend_up", backend="cloud", model="qwen3") == 0
