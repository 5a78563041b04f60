"""The security gateway: identity, RBAC, quotas, audit log and model encryption."""

from luodi.security.audit import AuditEvent, AuditFilter, AuditLog, Decision, VerifyReport
from luodi.security.crypto import (
    KeySource,
    decrypt_file,
    encrypt_file,
    model_opener,
    open_model_for_loading,
)
from luodi.security.directory import Directory
from luodi.security.gateway import Gateway, check_bind_allowed
from luodi.security.keys import KEY_PREFIX, ApiKeyInfo, CreatedKey, KeyStore
from luodi.security.principal import Limits, Principal
from luodi.security.quotas import QuotaStore, Reservation
from luodi.security.rbac import BUILTIN_ROLES

__all__ = [
    "BUILTIN_ROLES",
    "KEY_PREFIX",
    "ApiKeyInfo",
    "AuditEvent",
    "AuditFilter",
    "AuditLog",
    "CreatedKey",
    "Decision",
    "Directory",
    "Gateway",
    "KeySource",
    "KeyStore",
    "Limits",
    "Principal",
    "QuotaStore",
    "Reservation",
    "VerifyReport",
    "check_bind_allowed",
    "decrypt_file",
    "encrypt_file",
    "model_opener",
    "open_model_for_loading",
]
