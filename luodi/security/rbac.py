"""Role-based access control: permission patterns, built-in roles, the authorize check.

A permission is colon-separated segments naming a resource and an action:
``model:<name>:invoke``, ``kb:<name>:read``, ``kb:<name>:write``, ``audit:read``,
``audit:purge``, ``keys:manage``, ``users:manage``, ``risk:<model>:score``,
``risk:<model>:train`` (fraud scoring: scoring and training are separate). A pattern
may use ``*`` (and other shell wildcards) within a segment; the single pattern ``*``
grants everything.

Administration is tenant-scoped: ``keys:manage:<tenant>``, ``users:manage:<tenant>`` and
``audit:read:<tenant>`` reach one tenant's keys, users and audit records; the two-segment
form (``users:manage``) is the same as ``users:manage:*``, every tenant.

``covers`` says whether one set of patterns grants everything another grants: an
administrator may hand out (keys, roles) only rights it holds itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from luodi.errors import InvalidRequestError, PermissionDeniedError
from luodi.security.principal import Principal

__all__ = [
    "BUILTIN_ROLES",
    "SCOPED_RESOURCES",
    "authorize",
    "covers",
    "grants",
    "grants_in_some_tenant",
    "missing_rights",
    "model_allowed",
    "tenant_scope",
    "validate_permission",
]

BUILTIN_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("Everything, including keys, users, roles and the audit log.", ("*",)),
    "developer": (
        "Invoke any model, read and write any knowledge base, score and train risk models.",
        ("model:*:invoke", "kb:*:read", "kb:*:write", "pii:use", "risk:*:score", "risk:*:train"),
    ),
    "analyst": (
        "Invoke any model, read any knowledge base, score with risk models.",
        ("model:*:invoke", "kb:*:read", "pii:use", "risk:*:score"),
    ),
    "auditor": ("Read the audit log; invokes nothing.", ("audit:read",)),
    "monitor": ("Scrape /metrics and read /health's detail; invokes nothing.", ("metrics:read",)),
}
"""Role name → (description, permission patterns). Created at start, not editable."""

# Resource → (segment counts allowed, actions): ``model:<name>:invoke``, ``audit:read[:<tenant>]``.
_SHAPES: dict[str, tuple[frozenset[int], frozenset[str]]] = {
    "model": (frozenset({3}), frozenset({"invoke", "*"})),
    "kb": (frozenset({3}), frozenset({"read", "write", "download", "publish", "manage", "*"})),
    "metrics": (frozenset({2}), frozenset({"read", "*"})),
    "pii": (frozenset({2}), frozenset({"use", "*"})),
    "risk": (frozenset({3}), frozenset({"score", "train", "*"})),
    "audit": (frozenset({2, 3}), frozenset({"read", "purge", "*"})),
    "keys": (frozenset({2, 3}), frozenset({"manage", "*"})),
    "users": (frozenset({2, 3}), frozenset({"manage", "*"})),
}
SCOPED_RESOURCES = frozenset({"audit", "keys", "users"})
"""Resources whose permissions take a tenant as third segment (absent: every tenant)."""
_WILDCARDS = frozenset("*?[")


_NAMED_RESOURCES = frozenset({"model", "kb", "risk"})
"""Resources whose middle segment is a name, which may itself hold colons (``qwen3:14b``)."""


def segments(permission: str) -> list[str]:
    """``model:qwen3:14b:invoke`` → ``["model", "qwen3:14b", "invoke"]``.

    The first and last segments of a named resource are its kind and action; what lies
    between is the name, colons and all (Ollama names models ``qwen3:14b``).
    """
    parts = permission.split(":")
    if parts[0] in _NAMED_RESOURCES and len(parts) > 3:
        return [parts[0], ":".join(parts[1:-1]), parts[-1]]
    return parts


def _parts(pattern: str) -> list[str]:
    """A pattern's segments, a tenant-scoped right without a tenant meaning every one."""
    parts = segments(pattern)
    if len(parts) == 2 and parts[0] in SCOPED_RESOURCES:
        return [*parts, "*"]
    return parts


def validate_permission(pattern: str) -> str:
    """Check a permission pattern's shape; returns it unchanged.

    Raises:
        InvalidRequestError: The pattern names no known resource or action.
    """
    if pattern == "*":
        return pattern
    parts = segments(pattern)
    shape = _SHAPES.get(parts[0])
    if shape is None or len(parts) not in shape[0] or not all(parts):
        raise InvalidRequestError(
            f"invalid permission {pattern!r}: expected one of model:<name>:invoke, "
            "kb:<name>:read|write|download|publish|manage, audit:read[:<tenant>], "
            "audit:purge, keys:manage[:<tenant>], users:manage[:<tenant>], metrics:read, "
            "pii:use, risk:<model>:score|train",
            param="permissions",
        )
    action = parts[-1] if parts[0] not in SCOPED_RESOURCES else parts[1]
    if action not in shape[1]:
        raise InvalidRequestError(
            f"invalid permission {pattern!r}: unknown action {parts[-1]!r}", param="permissions"
        )
    return pattern


def grants(patterns: Iterable[str], permission: str) -> bool:
    """True if any pattern grants ``permission`` (segment by segment).

    ``audit:read`` asks for every tenant's records; ``audit:read:acme`` for acme's.
    """
    wanted = _parts(permission)
    for pattern in patterns:
        if pattern == "*":
            return True
        parts = _parts(pattern)
        if len(parts) == len(wanted) and all(
            _segment_covers(p, w) if _WILDCARDS & set(w) else fnmatchcase(w, p)
            for w, p in zip(wanted, parts, strict=True)
        ):
            return True
    return False


def _segment_covers(held: str, wanted: str) -> bool:
    if held == "*" or held == wanted:
        return True
    # A wanted wildcard is covered only by "*" or the same text: "?" is narrower than "*".
    return not (_WILDCARDS & set(wanted)) and fnmatchcase(wanted, held)


def covers(patterns: Iterable[str], wanted: str) -> bool:
    """True if ``patterns`` grant everything the pattern ``wanted`` grants.

    Conservative: it may say no for an exotic pattern that is in fact covered, never
    yes for one that is not.
    """
    held = list(patterns)
    if "*" in held:
        return True
    if wanted == "*":
        return False
    parts = _parts(wanted)
    for pattern in held:
        have = _parts(pattern)
        if len(have) == len(parts) and all(
            _segment_covers(h, w) for h, w in zip(have, parts, strict=True)
        ):
            return True
    return False


def missing_rights(patterns: Iterable[str], wanted: Iterable[str]) -> list[str]:
    """The patterns of ``wanted`` that ``patterns`` do not cover, sorted."""
    held = list(patterns)
    return sorted({w for w in wanted if not covers(held, w)})


def grants_in_some_tenant(patterns: Iterable[str], right: str) -> bool:
    """True if a tenant-scoped ``right`` (``users:manage``) is granted in any tenant."""
    held = list(patterns)
    if grants(held, right):
        return True
    resource, _, action = right.partition(":")
    for pattern in held:
        parts = _parts(pattern)
        if len(parts) == 3 and fnmatchcase(resource, parts[0]) and fnmatchcase(action, parts[1]):
            return True
    return False


def tenant_scope(patterns: Iterable[str], right: str, tenants: Iterable[str]) -> list[str] | None:
    """Tenants in which ``right`` (e.g. ``users:manage``) is granted.

    Returns:
        None when it is granted in every tenant (including ones not yet created),
        else the names among ``tenants`` it is granted in (maybe none).
    """
    held = list(patterns)
    if grants(held, right):
        return None
    return sorted(t for t in tenants if grants(held, f"{right}:{t}"))


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
    parts = segments(permission)
    if parts[0] == "model" and len(parts) == 3 and not model_allowed(principal, parts[1]):
        raise PermissionDeniedError(
            f"key {principal.key_id} is not allowed to use model {parts[1]!r} "
            f"(allowed: {', '.join(principal.allowed_models or ())})"
        )
