"""HTTP server settings."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ServerSettings(BaseModel):
    """Where and how the HTTP API listens."""

    host: str = "127.0.0.1"
    """Address to bind. Loopback by default; binding elsewhere needs auth on."""

    port: int = Field(default=8000, ge=1, le=65535)
    """TCP port to bind."""

    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed by CORS, listed explicitly; empty means CORS is off."""

    log_level: str = "info"
    """Log level for luodi and uvicorn (debug, info, warning, error)."""

    drain_timeout_s: float = Field(default=20.0, ge=0, le=3600)
    """On SIGTERM or Ctrl-C: stop accepting, let requests in flight finish for up to
    this long, then end the rest (streams with a last ``finish_reason: "error"``
    chunk, others with 503 + Retry-After) and exit 0. Keep it below the
    orchestrator's grace period (Kubernetes: 30 s)."""

    gc_freeze: bool = True
    """Once the server has started (models loaded, indexes read), move every object alive
    into the garbage collector's permanent generation (``gc.freeze``, as vLLM does), so
    full collections while serving scan only what requests allocate: their pauses stall
    the event loop and the engine thread alike, and show as inter-token latency spikes."""

    max_body_mb: float = Field(default=16.0, gt=0)
    """Largest request body on a route not named in ``body_limits_mb``; a larger one is
    refused with 413 from its ``Content-Length`` (or as it arrives, when chunked)
    before it is read. Knowledge uploads get ``knowledge.max_upload_mb`` plus 1 MB of
    multipart framing instead."""

    body_limits_mb: dict[str, float] = Field(default_factory=dict)
    """Per-route body limits in MB, by path glob (``/v1/embeddings``: 64); the longest
    matching pattern wins over ``max_body_mb`` and the upload limit."""

    open_metrics: bool = False
    """Let ``GET /metrics`` answer without a key (a scraper on a private network).
    Off: it needs a key whose roles grant ``metrics:read``."""

    open_docs: bool = False
    """Let ``/docs``, ``/redoc`` and ``/openapi.json`` answer without a key. Off: they
    need a key like every route except the liveness probe ``GET /health``."""
