"""The knowledge ACL's view of an authenticated principal."""

from __future__ import annotations

from luodi.knowledge.access import Caller
from luodi.security import Principal
from luodi.security.rbac import grants

__all__ = ["kb_caller"]


def kb_caller(principal: Principal) -> Caller:
    """The knowledge ACL's view of a principal: tenant, roles and its RBAC grants.

    ``kb:<name>:publish`` and ``kb:<name>:manage`` are asked of the principal's
    permission patterns (``*`` holds both; so does ``kb:<name>:*``).
    """
    permissions = principal.permissions
    return Caller(
        tenant=principal.tenant or None,
        roles=frozenset(principal.roles),
        user=principal.user,
        may=lambda permission: grants(permissions, permission),
    )
