"""Wire models of the admin API (requests; responses are the dataclasses as JSON)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "KeyCreate",
    "KeyUpdate",
    "LimitsBody",
    "PasswordSet",
    "RoleCreate",
    "RoleUpdate",
    "TenantCreate",
    "TenantUpdate",
    "UserCreate",
]


class LimitsBody(BaseModel):
    """Optional limits; omitted fields fall back to the configured defaults."""

    # The columns' sizes (INTEGER, BIGINT in PostgreSQL): a larger value is a 400, not a 500.
    requests_per_minute: int | None = Field(default=None, ge=1, le=2**31 - 1)
    tokens_per_minute: int | None = Field(default=None, ge=1, le=2**63 - 1)
    tokens_per_day: int | None = Field(default=None, ge=1, le=2**63 - 1)


class KeyCreate(BaseModel):
    """``POST /admin/keys``."""

    user: str
    name: str = ""
    expires_at: datetime | None = None
    allowed_models: list[str] | None = None
    ip_allowlist: list[str] | None = None
    priority: int = Field(default=1, ge=0, le=2)
    limits: LimitsBody = Field(default_factory=LimitsBody)


class KeyUpdate(BaseModel):
    """``PATCH /admin/keys/{key_id}``: only the fields sent change.

    ``limits`` replaces all three of the key's own limits (one left out falls back to
    the configured default). ``null`` for ``allowed_models``, ``ip_allowlist`` or
    ``expires_at`` removes that restriction.
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=128)
    priority: int | None = Field(default=None, ge=0, le=2)
    limits: LimitsBody | None = None
    allowed_models: list[str] | None = None
    ip_allowlist: list[str] | None = None
    expires_at: datetime | None = None


class PasswordSet(BaseModel):
    """``PUT /admin/users/{name}/password``: the console sign-in password (never logged)."""

    model_config = ConfigDict(extra="forbid")

    password: str = Field(max_length=1024, repr=False)


class UserCreate(BaseModel):
    """``POST /admin/users``."""

    name: str = Field(min_length=1, max_length=128)
    tenant: str = "default"
    roles: list[str] = Field(default_factory=list)


class RoleCreate(BaseModel):
    """``POST /admin/roles``."""

    name: str = Field(min_length=1, max_length=128)
    permissions: list[str]
    description: str = ""


class RoleUpdate(BaseModel):
    """``PUT /admin/roles/{name}``."""

    permissions: list[str]


class TenantCreate(BaseModel):
    """``POST /admin/tenants``."""

    name: str = Field(min_length=1, max_length=128)
    limits: LimitsBody = Field(default_factory=LimitsBody)
    pii_policy: str | None = None


class TenantUpdate(BaseModel):
    """``PATCH /admin/tenants/{name}``: only the fields sent change.

    ``limits`` replaces all three (one left out falls back to the configured default);
    ``"pii_policy": null`` returns the tenant to the default policy.
    """

    model_config = ConfigDict(extra="forbid")

    limits: LimitsBody | None = None
    pii_policy: str | None = Field(default=None, min_length=1, max_length=128)
