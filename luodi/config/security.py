"""Security gateway settings: authentication, quotas, audit and model keys."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator


class LimitSettings(BaseModel):
    """One set of limits; ``None`` means unlimited."""

    requests_per_minute: int | None = Field(default=None, ge=1)
    """Requests admitted per calendar minute."""

    tokens_per_minute: int | None = Field(default=None, ge=1)
    """Tokens (prompt + completion) charged per calendar minute."""

    tokens_per_day: int | None = Field(default=None, ge=1)
    """Tokens (prompt + completion) charged per UTC day."""

    @model_validator(mode="after")
    def _day_covers_minute(self) -> LimitSettings:
        if (
            self.tokens_per_day is not None
            and self.tokens_per_minute is not None
            and self.tokens_per_day < self.tokens_per_minute
        ):
            raise ValueError(
                f"tokens_per_day={self.tokens_per_day} is below "
                f"tokens_per_minute={self.tokens_per_minute}"
            )
        return self


class QuotaSettings(BaseModel):
    """Default limits per API key and per tenant; keys and tenants may override them."""

    store: Literal["memory", "redis"] = "memory"
    """Where counters live: in this process, or in Redis shared by every replica."""

    redis_prefix: str = Field(default="luodi:quota", min_length=1)
    """Prefix of every Redis key the quota store writes."""

    per_key: LimitSettings = Field(default_factory=LimitSettings)
    """Limits applied to each API key unless the key sets its own."""

    per_tenant: LimitSettings = Field(default_factory=LimitSettings)
    """Limits applied to each tenant (all its keys together) unless it sets its own."""


class ModelKeySettings(BaseModel):
    """Where a key comes from (model files, the audit chain); set at most one source."""

    env: str | None = None
    """Name of an environment variable holding the key (64 hex chars or base64)."""

    file: Path | None = None
    """Path of a file holding the key (mode 600 expected)."""

    kms_command: str | None = None
    """Command whose standard output is the key, e.g. a KMS or Vault client."""

    @model_validator(mode="after")
    def _one_source(self) -> ModelKeySettings:
        chosen = {
            name: value
            for name, value in (
                ("env", self.env),
                ("file", self.file),
                ("kms_command", self.kms_command),
            )
            if value is not None
        }
        if len(chosen) > 1:
            raise ValueError(f"model_key: set only one key source, got {sorted(chosen)}")
        return self


class AuditSettings(BaseModel):
    """The append-only, hash-chained audit log."""

    enabled: bool = True
    """Write one audit record per request and admin action. Off only for benchmarks."""

    store_content: bool = False
    """Keep the full prompt and response text; otherwise only their SHA-256 digests."""

    retention_days: int = Field(default=180, ge=180)
    """Records younger than this can never be purged (at least 180 days)."""

    flush_interval_ms: float = Field(default=0.0, ge=0.0, le=1000.0)
    """Extra time the writer waits to gather more records into one commit. At 0 it
    commits as soon as the previous commit ends (group commit: records that arrive
    during a commit go together in the next one), so nothing waits needlessly."""

    max_batch: int = Field(default=256, ge=1, le=100_000)
    """Most records committed in one transaction."""

    durable_ack: bool = True
    """``audit()`` returns only once its record is committed (survives a crash).
    When off it returns at once and a crash may lose the last unflushed batch."""

    queue_limit: int = Field(default=10_000, ge=1)
    """Records waiting for the writer beyond which ``audit()`` waits (back-pressure)."""

    key: ModelKeySettings = Field(default_factory=ModelKeySettings)
    """Key of the chain's HMAC, kept outside the database (same sources as
    ``model_key``). Unset, the chain is a plain hash chain that anyone able to write
    the database can rewrite undetected; the server warns at start."""

    checkpoint_file: Path | None = None
    """File the server appends a signed checkpoint of the chain head to (one JSON
    line) every ``checkpoint_interval_s``; ``luodi audit verify --checkpoint`` checks
    the chain against it. Keep it where the database's writers cannot rewrite it."""

    checkpoint_command: str | None = None
    """Command that receives each periodic checkpoint as one JSON line on standard
    input, e.g. ``logger -t luodi-audit`` (syslog) or an object-lock bucket upload."""

    checkpoint_interval_s: float = Field(default=300.0, ge=1.0)
    """Seconds between periodic checkpoints (when a file or command is set)."""

    @model_validator(mode="after")
    def _batch_fits_queue(self) -> AuditSettings:
        if self.max_batch > self.queue_limit:
            raise ValueError(
                f"audit.max_batch={self.max_batch} exceeds audit.queue_limit={self.queue_limit}"
            )
        return self


class SecuritySettings(BaseModel):
    """Identity, RBAC, quotas, audit and encryption at rest."""

    auth_enabled: bool = True
    """Require an API key on every request. Turning it off is for a local quick start:
    the server then warns at start and refuses to bind a non-loopback address."""

    redis_url: str | None = None
    """Redis URL (``redis://host:6379/0``) for quotas shared between replicas."""

    quotas: QuotaSettings = Field(default_factory=QuotaSettings)
    """Rate limits and token quotas."""

    audit: AuditSettings = Field(default_factory=AuditSettings)
    """The tamper-evident audit log."""

    model_key: ModelKeySettings = Field(default_factory=ModelKeySettings)
    """Key source for model files encrypted at rest."""

    require_encrypted_models: bool = False
    """Refuse to load a model file that is not encrypted (plain GGUF)."""

    require_strict_key_permissions: bool = False
    """Refuse a key file that its group or others may read or write; otherwise such
    a file loads with a warning."""

    trusted_proxies: list[str] = Field(default_factory=list)
    """Networks (CIDR) of reverse proxies whose ``X-Forwarded-For`` names the client.
    Empty: the header is ignored and the TCP peer is the client (IP allowlists and
    the audit's source address use it)."""

    @model_validator(mode="after")
    def _proxies_are_networks(self) -> SecuritySettings:
        for net in self.trusted_proxies:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"security.trusted_proxies: {net!r} is not a network") from exc
        return self

    @model_validator(mode="after")
    def _redis_needs_url(self) -> SecuritySettings:
        if self.quotas.store == "redis" and not self.redis_url:
            raise ValueError("security.quotas.store='redis' needs security.redis_url")
        return self
