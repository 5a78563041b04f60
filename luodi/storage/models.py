"""ORM models of the gateway's state: tenants, users, roles, API keys and the audit log.

Times are stored as integer microseconds since the Unix epoch (UTC): exact on every
backend, so audit hashes recomputed from a row always match the ones written.
Knowledge-base tables live with ``luodi.knowledge`` and are not modelled here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "ApiKeyRow",
    "AuditChainHeadRow",
    "AuditKeyAnchorRow",
    "AuditPurgeRow",
    "AuditRecordRow",
    "Base",
    "RoleRow",
    "SecurityEpochRow",
    "TenantRow",
    "UserRoleRow",
    "UserRow",
]

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints stably."""

    metadata = MetaData(naming_convention=_NAMING)


class TenantRow(Base):
    """A department: the unit quotas and audit queries group by."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_us: Mapped[int] = mapped_column(BigInteger)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokens_per_minute: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tokens_per_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    pii_policy: Mapped[str | None] = mapped_column(String(128), nullable=True)


class RoleRow(Base):
    """A named set of permission patterns such as ``model:*:invoke``."""

    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)


class UserRow(Base):
    """A person or service account; belongs to one tenant, holds roles."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    created_us: Mapped[int] = mapped_column(BigInteger)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)

    tenant: Mapped[TenantRow] = relationship(lazy="joined")
    roles: Mapped[list[RoleRow]] = relationship(secondary="user_roles", lazy="selectin")


class UserRoleRow(Base):
    """Which user holds which role."""

    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role_id: Mapped[int] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )


class ApiKeyRow(Base):
    """An API key; only the SHA-256 of the secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128), default="")
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_us: Mapped[int] = mapped_column(BigInteger)
    expires_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    ip_allowlist: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=1)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokens_per_minute: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tokens_per_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    user: Mapped[UserRow] = relationship(lazy="joined")


class AuditRecordRow(Base):
    """One audit record; ``hash`` chains it to the record before (``prev_hash``)."""

    __tablename__ = "audit_records"
    __table_args__ = (
        Index("ix_audit_records_ts_us", "ts_us"),
        Index("ix_audit_records_user", "user"),
        Index("ix_audit_records_tenant", "tenant"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts_us: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    user: Mapped[str | None] = mapped_column(String(128), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    tenant: Mapped[str | None] = mapped_column(String(128), nullable=True)
    source_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    endpoint: Mapped[str | None] = mapped_column(String(256), nullable=True)
    backend: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    pii_json: Mapped[str] = mapped_column(Text, default="{}")
    prompt_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    response_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prompt_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    response_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail_json: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    def columns(self) -> dict[str, Any]:
        """Every column as a plain dict (for hashing, export and the query API)."""
        return {c.key: getattr(self, c.key) for c in self.__table__.columns}


class AuditChainHeadRow(Base):
    """The single row naming the chain's last record; writers lock it to append."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """Id of the key the chain is keyed with from its latest key anchor; None unkeyed."""
    mac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """HMAC of (seq, hash, key_id) under that key, so the head cannot be reset."""


class AuditPurgeRow(Base):
    """A retention purge: the chain restarts after ``through_seq`` from ``through_hash``."""

    __tablename__ = "audit_purges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    purged_us: Mapped[int] = mapped_column(BigInteger)
    cutoff_us: Mapped[int] = mapped_column(BigInteger)
    through_seq: Mapped[int] = mapped_column(BigInteger)
    through_hash: Mapped[str] = mapped_column(String(64))
    deleted: Mapped[int] = mapped_column(Integer)
    principal: Mapped[str | None] = mapped_column(String(128), nullable=True)
    mac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """HMAC of the anchor under the chain key (None for a purge of an unkeyed chain)."""


class AuditKeyAnchorRow(Base):
    """Records after ``after_seq`` are HMAC-chained with key ``key_id``.

    Written in the same transaction as the first record under a key, so an unkeyed
    (legacy) chain continues keyed, and ``after_hash`` pins the legacy part before it.
    """

    __tablename__ = "audit_key_anchors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    after_seq: Mapped[int] = mapped_column(BigInteger)
    after_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32))
    created_us: Mapped[int] = mapped_column(BigInteger)
    mac: Mapped[str] = mapped_column(String(64))


class SecurityEpochRow(Base):
    """A counter bumped by every change to keys, users or roles.

    Gateways cache resolved keys and re-check only this one row per request, so a
    revocation made anywhere (another replica, the CLI) applies on the next request.
    """

    __tablename__ = "security_epoch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger)
