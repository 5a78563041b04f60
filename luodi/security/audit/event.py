"""What one audit record says: ``AuditEvent``, filled in by the API and admin layers."""

from __future__ import annotations

import enum
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from luodi.security.principal import Principal

__all__ = ["AuditEvent", "Decision", "sha256_text"]


class Decision(enum.StrEnum):
    """Whether the gateway let the request through."""

    ALLOWED = "allowed"
    DENIED = "denied"


def sha256_text(text: str) -> str:
    """The hex SHA-256 of a text's UTF-8 bytes (the digest audit records keep)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass(slots=True)
class AuditEvent:
    """One API request or admin action, as the audit log records it.

    Full ``prompt_text``/``response_text`` are kept only when
    ``security.audit.store_content`` is on; otherwise the writer drops them and keeps
    the digests. PII findings are entity types and counts, never values.

    Attributes:
        endpoint: Route or admin action, e.g. ``/v1/chat/completions``, ``keys.create``.
        kind: ``request`` or ``admin``.
        decision: Allowed or denied.
        reason: Why it was denied (the error message), or a note.
        time_us: When it happened, microseconds since the epoch (UTC).
        user, key_id, tenant: The principal; ``None`` when unauthenticated.
        source_ip: The client's address.
        model, backend: Model asked for and the engine backend that served it.
        prompt_tokens, completion_tokens: Token usage.
        latency_ms: Time from arrival to the last byte.
        pii_findings: Entity type → count found in the prompt.
        prompt_sha256, response_sha256: Digests of the texts.
        prompt_text, response_text: The texts themselves (kept only if store_content).
        detail: Arguments of an admin action (never a secret).
    """

    endpoint: str
    kind: str = "request"
    decision: Decision = Decision.ALLOWED
    reason: str | None = None
    time_us: int = field(default_factory=_now_us)
    user: str | None = None
    key_id: str | None = None
    tenant: str | None = None
    source_ip: str | None = None
    model: str | None = None
    backend: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    pii_findings: dict[str, int] = field(default_factory=dict)
    prompt_sha256: str | None = None
    response_sha256: str | None = None
    prompt_text: str | None = None
    response_text: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_request(
        cls,
        principal: Principal | None,
        *,
        endpoint: str,
        prompt: str | None = None,
        response: str | None = None,
        **fields: Any,
    ) -> AuditEvent:
        """Build an event from a principal and the texts; digests are computed here."""
        return cls(
            endpoint=endpoint,
            user=principal.user if principal else None,
            key_id=principal.key_id if principal else None,
            tenant=principal.tenant if principal else None,
            prompt_sha256=sha256_text(prompt) if prompt is not None else None,
            response_sha256=sha256_text(response) if response is not None else None,
            prompt_text=prompt,
            response_text=response,
            **fields,
        )
