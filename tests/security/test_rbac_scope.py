"""Tenant-scoped permissions and the ``covers`` relation behind the no-escalation rule."""

from __future__ import annotations

import pytest

from luodi.errors import InvalidRequestError
from luodi.security import Gateway
from luodi.security.rbac import covers, grants, tenant_scope, validate_permission


@pytest.mark.parametrize(
    ("patterns", "permission", "granted"),
    [
        (["users:manage"], "users:manage:acme", True),
        (["users:manage"], "users:manage", True),
        (["users:manage:acme"], "users:manage:acme", True),
        (["users:manage:acme"], "users:manage:globex", False),
        (["users:manage:acme"], "users:manage", False),  # every tenant
        (["users:manage:?"], "users:manage", False),  # "?" is not every tenant
        (["users:manage:*"], "users:manage", True),
        (["audit:*"], "audit:read:acme", True),
        (["audit:read"], "audit:purge", False),
        (["*"], "keys:manage", True),
        (["model:*:invoke"], "model:qwen3:invoke", True),
    ],
)
def test_grants(patterns: list[str], permission: str, granted: bool) -> None:
    assert grants(patterns, permission) is granted


@pytest.mark.parametrize(
    ("held", "wanted", "covered"),
    [
        (["*"], "*", True),
        (["keys:manage"], "*", False),
        (["model:*:invoke"], "model:qwen*:invoke", True),
        (["model:qwen*:invoke"], "model:*:invoke", False),
        (["model:?:invoke"], "model:*:invoke", False),
        (["model:q*:invoke"], "model:qwen3:invoke", True),
        (["users:manage"], "users:manage:acme", True),
        (["users:manage:acme"], "users:manage", False),
        (["kb:*:read"], "kb:*:write", False),
        (["audit:read"], "audit:read", True),
    ],
)
def test_covers(held: list[str], wanted: str, covered: bool) -> None:
    assert covers(held, wanted) is covered


def test_tenant_scope() -> None:
    tenants = ["acme", "globex", "initech"]
    assert tenant_scope(["audit:read"], "audit:read", tenants) is None
    assert tenant_scope(["audit:read:acme", "audit:read:init*"], "audit:read", tenants) == [
        "acme",
        "initech",
    ]
    assert tenant_scope(["model:*:invoke"], "audit:read", tenants) == []


@pytest.mark.parametrize("ok", ["users:manage:acme", "audit:read:acme", "keys:manage"])
def test_scoped_permissions_validate(ok: str) -> None:
    assert validate_permission(ok) == ok


@pytest.mark.parametrize("bad", ["users:manage:acme:x", "audit:write:acme", "model:x"])
def test_bad_scoped_permissions_are_refused(bad: str) -> None:
    with pytest.raises(InvalidRequestError):
        validate_permission(bad)


@pytest.mark.parametrize("name", ["a*", "acme:x", "a?", "[ab]"])
async def test_tenant_names_cannot_hold_pattern_characters(
    sqlite_gateway: Gateway, name: str
) -> None:
    with pytest.raises(InvalidRequestError, match="may not contain"):
        sqlite_gateway.directory.create_tenant(name)
