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


@pytest.mark.parametrize(
    ("patterns", "permission", "granted"),
    [
        (["model:qwen3:14b:invoke"], "model:qwen3:14b:invoke", True),
        (["model:*:invoke"], "model:qwen3:14b:invoke", True),
        (["model:qwen3*:invoke"], "model:qwen3:14b:invoke", True),
        # A model named with a colon (Ollama's qwen3:14b) is its own name, not qwen3's.
        (["model:qwen3:invoke"], "model:qwen3:14b:invoke", False),
        (["model:qwen3:14b:invoke"], "model:qwen3:32b:invoke", False),
        (["model:qwen3:14b:invoke"], "model:qwen3:invoke", False),
    ],
)
def test_model_names_may_hold_colons(patterns: list[str], permission: str, granted: bool) -> None:
    assert grants(patterns, permission) is granted
    assert validate_permission(permission) == permission


async def test_a_key_allowlist_sees_the_whole_colon_name(gateway: Gateway) -> None:
    from luodi.errors import PermissionDeniedError
    from luodi.security.rbac import authorize
    from tests.conftest import make_key

    key = make_key(gateway, "colon-user", ["developer"], allowed_models=["qwen3:14b"])
    principal = await gateway.authenticate(f"Bearer {key}", "127.0.0.1")
    authorize(principal, "model:qwen3:14b:invoke")
    with pytest.raises(PermissionDeniedError, match="qwen3:32b"):
        authorize(principal, "model:qwen3:32b:invoke")
