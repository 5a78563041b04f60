"""Who is asking: the identity every later gateway stage works from."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ANONYMOUS_KEY_ID", "Limits", "Principal"]

ANONYMOUS_KEY_ID = "anonymous"
"""Key id of the principal returned when authentication is turned off."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Rate limits and quotas for one scope (a key or a tenant); ``None`` is unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller, resolved from an API key.

    Attributes:
        key_id: Public id of the API key (never the secret).
        user: Name of the key's owner.
        tenant: The owner's tenant (department).
        roles: Names of the owner's roles.
        permissions: Permission patterns granted by those roles, e.g. ``model:*:invoke``.
        allowed_models: Model names (or patterns) this key may invoke; ``None`` is any
            model the permissions allow.
        ip_allowlist: Networks (CIDR or single addresses) the key may be used from;
            ``None`` is anywhere.
        priority: Scheduler class for the engine: 0 low, 1 normal, 2 high
            (``luodi.engine.types.Priority`` values).
        pii_policy: Name of the tenant's PII policy, or ``None`` for the default.
        key_limits: Limits of this key after defaults are applied.
        tenant_limits: Limits of the tenant after defaults are applied.
    """

    key_id: str
    user: str
    tenant: str
    roles: frozenset[str]
    permissions: frozenset[str]
    allowed_models: tuple[str, ...] | None = None
    ip_allowlist: tuple[str, ...] | None = None
    priority: int = 1
    pii_policy: str | None = None
    key_limits: Limits = field(default_factory=Limits)
    tenant_limits: Limits = field(default_factory=Limits)

    @property
    def is_anonymous(self) -> bool:
        """True for the principal used when authentication is off."""
        return self.key_id == ANONYMOUS_KEY_ID
