"""Relational storage: SQLAlchemy engine and sessions, ORM models, shipped migrations."""

from luodi.storage.console import ConsoleSessionRow, UserPasswordRow
from luodi.storage.database import Database
from luodi.storage.models import (
    ApiKeyRow,
    AuditChainHeadRow,
    AuditKeyAnchorRow,
    AuditPurgeRow,
    AuditRecordRow,
    Base,
    RoleRow,
    SecurityEpochRow,
    TenantRow,
    UserRoleRow,
    UserRow,
)

__all__ = [
    "ApiKeyRow",
    "AuditChainHeadRow",
    "AuditKeyAnchorRow",
    "AuditPurgeRow",
    "AuditRecordRow",
    "Base",
    "ConsoleSessionRow",
    "Database",
    "RoleRow",
    "SecurityEpochRow",
    "TenantRow",
    "UserPasswordRow",
    "UserRoleRow",
    "UserRow",
]
