"""Settings of the ``routing`` section: deployment mode, models and their backends.

A model name maps to one or more backends. Each backend is the embedded llama.cpp
engine or an OpenAI-compatible server (vLLM, SGLang, a cloud API) with a weight, a
role (primary, fallback, overflow) and a location (on-prem, cloud). The checks
below turn every combination that cannot work, or that would send data off the
premises in private mode, into an error before the server binds.
"""

from __future__ import annotations

import enum
import os
from typing import Any

from pydantic import BaseModel, Field, SecretStr, model_validator

__all__ = [
    "BackendKind",
    "BackendRole",
    "BackendSettings",
    "DeploymentMode",
    "Location",
    "ModelFormat",
    "ModelRoute",
    "RoutingSettings",
]


class DeploymentMode(enum.StrEnum):
    """Where a model may run."""

    PRIVATE = "private"
    """Everything on the premises; a cloud backend is a config error."""
    HYBRID = "hybrid"
    """On-prem first; cloud on overflow, slow first tokens or local outage."""
    API = "api"
    """Cloud backends only."""


class BackendKind(enum.StrEnum):
    """The engine behind a backend."""

    LLAMACPP = "llamacpp"
    VLLM = "vllm"
    SGLANG = "sglang"
    OPENAI = "openai"
    """Any other OpenAI-compatible server, e.g. DashScope's compatible mode."""


class BackendRole(enum.StrEnum):
    """How the router uses a backend."""

    PRIMARY = "primary"
    """Load-balanced with the other primaries."""
    FALLBACK = "fallback"
    """Used only when no primary is healthy."""
    OVERFLOW = "overflow"
    """Used when primaries are saturated or slow (hybrid mode), or down."""


class Location(enum.StrEnum):
    """Whether requests sent to a backend leave the premises."""

    ON_PREM = "on-prem"
    CLOUD = "cloud"


class ModelFormat(enum.StrEnum):
    """The weight format a backend serves; decides which engine may serve it."""

    GGUF = "gguf"
    AWQ = "awq"
    GPTQ = "gptq"
    FP8 = "fp8"
    SAFETENSORS = "safetensors"


_GPU_FORMATS = {ModelFormat.AWQ, ModelFormat.GPTQ, ModelFormat.FP8, ModelFormat.SAFETENSORS}


class BackendSettings(BaseModel):
    """One backend of a model."""

    name: str = Field(min_length=1)
    """Unique within the model; the ``backend`` label of metrics and the audit record."""

    kind: BackendKind = BackendKind.VLLM
    """Engine type: llamacpp (embedded), vllm, sglang, or openai (any compatible API)."""

    url: str | None = None
    """Base URL of the OpenAI API, ending in ``/v1`` (e.g. ``http://vllm-0:8000/v1``)."""

    upstream_model: str | None = None
    """Model name sent upstream (e.g. ``qwen-plus``). None: the luodi model name."""

    api_key: SecretStr | None = None
    """Bearer key for the upstream."""

    api_key_env: str | None = None
    """Name of an environment variable holding the key (instead of ``api_key``)."""

    weight: float = Field(default=1.0, gt=0)
    """Share of traffic among backends of the same role, as a tie-breaker on load."""

    role: BackendRole = BackendRole.PRIMARY
    """primary, fallback or overflow."""

    location: Location = Location.ON_PREM
    """on-prem or cloud; cloud backends get PII-protected prompts only."""

    format: ModelFormat | None = None
    """Weight format served (gguf, awq, gptq, fp8, safetensors); None for a cloud API."""

    max_outstanding: int = Field(default=64, ge=1)
    """Requests in flight to this backend before the router treats it as saturated."""

    connect_timeout_s: float = Field(default=5.0, gt=0)
    """Seconds to open a connection."""

    read_timeout_s: float = Field(default=120.0, gt=0)
    """Longest silence on a response, including the wait for the first token."""

    max_retries: int = Field(default=2, ge=0, le=10)
    """Retries on this backend, before the first token, of a 5xx or of a connection
    that dropped before the response began (never of a 4xx; a refused connection
    fails over to another backend at once)."""

    retry_backoff_s: float = Field(default=0.25, ge=0)
    """First retry delay; doubles on each retry."""

    @model_validator(mode="after")
    def _check(self) -> BackendSettings:
        if self.kind is BackendKind.LLAMACPP:
            if self.location is Location.CLOUD:
                raise ValueError(f"backend '{self.name}': a llamacpp backend runs on-prem")
            if self.format in _GPU_FORMATS:
                raise ValueError(
                    f"backend '{self.name}': format {self.format.value} needs vllm or sglang;"
                    " the embedded llamacpp engine serves gguf only"
                )
        else:
            if not self.url:
                raise ValueError(f"backend '{self.name}': kind {self.kind.value} needs a url")
            if self.format is ModelFormat.GGUF and self.kind in (
                BackendKind.VLLM,
                BackendKind.SGLANG,
            ):
                raise ValueError(
                    f"backend '{self.name}': gguf on {self.kind.value} runs several times slower"
                    " than awq; serve gguf with kind llamacpp or convert the model"
                )
        if self.api_key is not None and self.api_key_env is not None:
            raise ValueError(f"backend '{self.name}': set api_key or api_key_env, not both")
        return self

    def resolved_api_key(self) -> str | None:
        """The key from ``api_key`` or the variable ``api_key_env`` names (None if unset)."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_env is not None:
            return os.environ.get(self.api_key_env) or None
        return None


class ModelRoute(BaseModel):
    """The backends serving one model name."""

    backends: list[BackendSettings] = Field(min_length=1)
    """At least one; names unique."""

    context_length: int = Field(default=32768, ge=256)
    """Context window reported in /v1/models for upstream backends."""

    @model_validator(mode="after")
    def _check(self) -> ModelRoute:
        names = [b.name for b in self.backends]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"backend names repeat: {', '.join(dupes)}")
        return self


class RoutingSettings(BaseModel):
    """Deployment mode and the model → backends map the router serves."""

    mode: DeploymentMode = DeploymentMode.PRIVATE
    """private, hybrid or api (``luodi serve --mode`` overrides it)."""

    models: dict[str, ModelRoute] = Field(default_factory=dict)
    """Model name → backends. Empty: the embedded engine alone serves its model."""

    max_rtt_ms: float = Field(default=50.0, gt=0)
    """Hybrid mode: cloud backends whose probed round trip exceeds this are skipped."""

    overflow_queue_wait_ms: float = Field(default=500.0, ge=0)
    """Hybrid mode: how long a request waits for a saturated local backend before overflow."""

    overflow_ttft_ms: float = Field(default=5000.0, gt=0)
    """Hybrid mode: overflow while local time to first token (moving average) is above this."""

    health_interval_s: float = Field(default=5.0, gt=0)
    """Seconds between health probes of each backend."""

    health_timeout_s: float = Field(default=2.0, gt=0)
    """A probe slower than this fails."""

    unhealthy_after: int = Field(default=2, ge=1)
    """Consecutive failures (probes or requests) that take a backend out of rotation."""

    healthy_after: int = Field(default=1, ge=1)
    """Consecutive successful probes that bring it back."""

    max_attempts: int = Field(default=3, ge=1)
    """Backends tried for one request that fails before its first token (or, if it is
    not streamed, before its last)."""

    replay_budget_s: float = Field(default=60.0, ge=0)
    """A non-streaming request whose backend fails mid-answer is run again on another
    backend only while it is younger than this; older ones get 503 with Retry-After.
    0 never replays."""

    @model_validator(mode="after")
    def _check_mode(self) -> RoutingSettings:
        for model, route in self.models.items():
            cloud = [b.name for b in route.backends if b.location is Location.CLOUD]
            local = [b.name for b in route.backends if b.location is Location.ON_PREM]
            if self.mode is DeploymentMode.PRIVATE and cloud:
                raise ValueError(
                    f"model '{model}': cloud backend(s) {', '.join(cloud)} are not allowed in"
                    " private mode (requests would leave the premises)"
                )
            if self.mode is DeploymentMode.API and local:
                raise ValueError(
                    f"model '{model}': api mode serves from cloud backends only;"
                    f" on-prem backend(s) {', '.join(local)} are configured"
                )
            if self.mode is DeploymentMode.HYBRID and not local:
                raise ValueError(f"model '{model}': hybrid mode needs an on-prem backend")
            if not any(b.role is BackendRole.PRIMARY for b in route.backends):
                raise ValueError(f"model '{model}': no backend has role primary")
        return self

    def with_mode(self, mode: DeploymentMode | str) -> RoutingSettings:
        """A copy in another mode, checked again (for ``luodi serve --mode``)."""
        data: dict[str, Any] = self.model_dump()
        data["mode"] = DeploymentMode(mode)
        return RoutingSettings.model_validate(data)
