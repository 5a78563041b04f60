"""Role-based access control: permission patterns, built-in roles, the authorize check.

A permission is colon-separated segments naming a resource and an action:
``model:<name>:invoke``, ``kb:<name>:read``, ``kb:<name>:write``, ``audit:read``,
``audit:purge``, ``keys:manage``, ``users:manage``. A pattern may use ``*`` (and other shell
wildcards) within a segment; the single pattern ``*`` grants everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from luodi.errors import InvalidRequestError, PermissionDeniedError
from luodi.security.principal import Principal

__all__ = [
    "BUILTIN_ROLES",
    "authorize",
    "grants",
    "model_allowed",
    "validate_permission",
]

BUILTIN_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("Everything, including keys, users, roles and the audit log.", ("*",)),
    "developer": (
        "Invoke any model, read and write any knowledge base.",
        ("model:*:invoke", "kb:*:read", "kb:*:write"),
    ),
    "analyst": ("Invoke any model, read any knowledge base.", ("model:*:invoke", "kb:*:read")),
    "auditor": ("Read the audit log; invokes nothing.", ("audit:read",)),
}
"""Role name → (description, permission patterns). Created at start, not editable."""

# Resource → the shape of its permissions: segments after the resource name.
_SHAPES: dict[str, tuple[int, frozenset[str]]] = {
    "model": (3, frozenset({"invoke", "*"})),
    "kb": (3, frozenset({"read", "write", "*"})),
    "audit": (2, frozenset({"read", "purge", "*"})),
    "keys": (2, frozenset({"manage", "*"})),
    "users": (2, frozenset({"manage", "*"})),
}


def validate_permission(pattern: str) -> str:
    """Check a permission pattern's shape; returns it unchanged.

    Raises:
        InvalidRequestError: The pattern names no known resource or action.
    """
    if pattern == "*":
        return pattern
    parts = pattern.split(":")
    shape = _SHAPES.get(parts[0])
    if shape is None or len(parts) != shape[0] or not all(parts):
        raise InvalidRequestError(
            f"invalid permission {pattern!r}: expected one of model:<name>:invoke, "
            "kb:<name>:read, kb:<name>:write, audit:read, keys:manage, users:manage",
            param="permissions",
        )
    if parts[-1] not in shape[1]:
        raise InvalidRequestError(
            f"invalid permission {pattern!r}: unknown action {parts[-1]!r}", param="permissions"
        )
    return pattern


def grants(patterns: Iterable[str], permission: str) -> bool:
    """True if any pattern grants ``permission`` (segment by segment)."""
    wanted = permission.split(":")
    for pattern in patterns:
        if pattern == "*":
            return True
        parts = pattern.split(":")
        if len(parts) == len(wanted) and all(
            fnmatchcase(w, p) for w, p in zip(wanted, parts, strict=True)
        ):
            return True
    return False


def model_allowed(principal: Principal, model: str) -> bool:
    """True if the key's own model list (if it has one) admits ``model``."""
    if principal.allowed_models is None:
        return True
    return any(fnmatchcase(model, allowed) for allowed in principal.allowed_models)


def authorize(principal: Principal, permission: str) -> None:
    """Allow or refuse one action.

    Raises:
        PermissionDeniedError: Naming the missing permission, or the model the key
            is not allowed to use.
    """
    if not grants(principal.permissions, permission):
        raise PermissionDeniedError(
            f"key {principal.key_id} (user {principal.user!r}) lacks permission {permission!r}"
        )
    parts = permission.split(":")
    if parts[0] == "model" and len(parts) == 3 and not model_allowed(principal, parts[1]):
        raise PermissionDeniedError(
            f"key {principal.key_id} is not allowed to use model {parts[1]!r} "
            f"(allowed: {', '.join(principal.allowed_models or ())})"
        )
