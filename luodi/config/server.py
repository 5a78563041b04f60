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
