"""Authentication and RBAC boundaries, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest

from luodi.config.security import SecuritySettings
from luodi.config.storage import StorageSettings
from luodi.errors import (
    AuthenticationError,
    ConfigError,
    InvalidRequestError,
    PermissionDeniedError,
)
from luodi.security import Gateway, check_bind_allowed
from luodi.security import keys as keys_module
from luodi.security.keys import KEY_PREFIX, hash_secret

from .conftest import bearer, make_user, principal_for


async def test_key_is_shown_once_and_stored_only_as_hash(gateway: Gateway) -> None:
    make_user(gateway, "alice", ["developer"])
    created = gateway.keys.create("alice")
    assert created.secret.startswith(KEY_PREFIX)
    from sqlalchemy import text

    with gateway.db.engine.connect() as conn:
        stored = conn.execute(text("SELECT secret_sha256, display_prefix FROM api_keys")).one()
    assert stored[0] == hash_secret(created.secret)
    assert created.secret not in stored[1] and len(stored[1]) < len(created.secret)


@pytest.mark.parametrize(
    "header",
    [None, "", "Basic abc", "Bearer", "Bearer sk-other-123", "Bearer sk-luodi-unknown"],
)
async def test_missing_or_unknown_key_gets_401(gateway: Gateway, header: str | None) -> None:
    with pytest.raises(AuthenticationError) as err:
        await gateway.authenticate(header, "127.0.0.1")
    assert err.value.status_code == 401


async def test_revoked_key_is_refused_on_next_request(gateway: Gateway) -> None:
    make_user(gateway, "bob", ["analyst"])
    created = gateway.keys.create("bob")
    await gateway.authenticate(bearer(created.secret), "127.0.0.1")
    gateway.keys.revoke(created.info.id)
    with pytest.raises(AuthenticationError, match="revoked"):
        await gateway.authenticate(bearer(created.secret), "127.0.0.1")


async def test_expired_key_is_refused(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    make_user(gateway, "carol", ["analyst"])
    now = time.time_ns() // 1000
    created = gateway.keys.create("carol", expires_us=now + 3_600_000_000)
    await gateway.authenticate(bearer(created.secret), "127.0.0.1")  # now cached
    monkeypatch.setattr(keys_module, "_now_us", lambda: now + 3_600_000_001)  # an hour on
    with pytest.raises(AuthenticationError, match="expired"):
        await gateway.authenticate(bearer(created.secret), "127.0.0.1")
    gateway.keys.close()  # the cache forgotten: the database lookup refuses it too
    with pytest.raises(AuthenticationError, match="expired"):
        await gateway.authenticate(bearer(created.secret), "127.0.0.1")


async def test_disabled_user_keys_are_refused(sqlite_gateway: Gateway) -> None:
    make_user(sqlite_gateway, "dave", ["analyst"])
    created = sqlite_gateway.keys.create("dave")
    sqlite_gateway.directory.set_user_disabled("dave", True)
    with pytest.raises(AuthenticationError, match="disabled"):
        await sqlite_gateway.authenticate(bearer(created.secret), "127.0.0.1")


@pytest.mark.parametrize(
    ("client_ip", "allowed"),
    [
        ("10.1.2.3", True),
        ("10.255.0.1", True),
        ("192.168.1.5", True),
        ("192.168.1.6", False),
        ("11.0.0.1", False),
        ("not-an-ip", False),
    ],
)
async def test_key_from_disallowed_ip_is_refused(
    sqlite_gateway: Gateway, client_ip: str, allowed: bool
) -> None:
    make_user(sqlite_gateway, "erin", ["analyst"])
    created = sqlite_gateway.keys.create("erin", ip_allowlist=["10.0.0.0/8", "192.168.1.5"])
    if allowed:
        await sqlite_gateway.authenticate(bearer(created.secret), client_ip)
    else:
        with pytest.raises(PermissionDeniedError, match="may not be used from"):
            await sqlite_gateway.authenticate(bearer(created.secret), client_ip)


@pytest.mark.parametrize(
    ("role", "permission", "allowed"),
    [
        ("admin", "model:qwen3-14b:invoke", True),
        ("admin", "audit:read", True),
        ("developer", "model:qwen3-14b:invoke", True),
        ("developer", "kb:hr-docs:write", True),
        ("developer", "audit:read", False),
        ("developer", "keys:manage", False),
        ("analyst", "kb:hr-docs:read", True),
        ("analyst", "kb:hr-docs:write", False),
        ("auditor", "audit:read", True),
        ("auditor", "model:qwen3-14b:invoke", False),
        ("auditor", "kb:hr-docs:read", False),
    ],
)
async def test_builtin_roles_grant_exactly_their_permissions(
    sqlite_gateway: Gateway, role: str, permission: str, allowed: bool
) -> None:
    principal = await principal_for(sqlite_gateway, f"user-{role}", [role])
    if allowed:
        sqlite_gateway.authorize(principal, permission)
    else:
        with pytest.raises(PermissionDeniedError, match=permission):
            sqlite_gateway.authorize(principal, permission)


async def test_key_without_model_permission_gets_403_on_that_model(gateway: Gateway) -> None:
    gateway.directory.create_role("qwen-only", ["model:qwen3-14b:invoke", "kb:hr-*:read"])
    principal = await principal_for(gateway, "frank", ["qwen-only"])
    gateway.authorize(principal, "model:qwen3-14b:invoke")
    gateway.authorize(principal, "kb:hr-docs:read")
    with pytest.raises(PermissionDeniedError) as err:
        gateway.authorize(principal, "model:gemma3:invoke")
    assert err.value.status_code == 403
    assert "model:gemma3:invoke" in err.value.message
    with pytest.raises(PermissionDeniedError):
        gateway.authorize(principal, "kb:finance:read")


async def test_key_allowed_models_narrow_the_roles(sqlite_gateway: Gateway) -> None:
    principal = await principal_for(sqlite_gateway, "gina", ["developer"], allowed_models=["qwen*"])
    sqlite_gateway.authorize(principal, "model:qwen3-14b:invoke")
    with pytest.raises(PermissionDeniedError, match="not allowed to use model 'gemma3'"):
        sqlite_gateway.authorize(principal, "model:gemma3:invoke")


async def test_role_change_applies_on_next_request(sqlite_gateway: Gateway) -> None:
    sqlite_gateway.directory.create_role("reader", ["kb:a:read"])
    make_user(sqlite_gateway, "hank", ["reader"])
    secret = sqlite_gateway.keys.create("hank").secret
    before = await sqlite_gateway.authenticate(bearer(secret), "127.0.0.1")
    sqlite_gateway.directory.set_role_permissions("reader", ["kb:b:read"])
    after = await sqlite_gateway.authenticate(bearer(secret), "127.0.0.1")
    sqlite_gateway.authorize(before, "kb:a:read")
    with pytest.raises(PermissionDeniedError):
        sqlite_gateway.authorize(after, "kb:a:read")


@pytest.mark.parametrize(
    "pattern", ["model:x", "model:x:delete", "kb::read", "audit:write", "files:read", ""]
)
async def test_custom_role_with_invalid_permission_is_rejected(
    sqlite_gateway: Gateway, pattern: str
) -> None:
    with pytest.raises(InvalidRequestError, match="invalid permission"):
        sqlite_gateway.directory.create_role("bad", [pattern])


async def test_builtin_roles_cannot_be_changed(sqlite_gateway: Gateway) -> None:
    with pytest.raises(InvalidRequestError, match="built-in"):
        sqlite_gateway.directory.set_role_permissions("auditor", ["*"])
    with pytest.raises(InvalidRequestError, match="built-in"):
        sqlite_gateway.directory.delete_role("admin")


async def test_principal_carries_priority_tenant_and_limits(sqlite_gateway: Gateway) -> None:
    from luodi.security import Limits

    sqlite_gateway.directory.create_tenant("risk", limits=Limits(requests_per_minute=7))
    make_user(sqlite_gateway, "ivy", ["analyst"], tenant="risk")
    created = sqlite_gateway.keys.create("ivy", priority=2, limits=Limits(tokens_per_day=999))
    principal = await sqlite_gateway.authenticate(bearer(created.secret), "127.0.0.1")
    assert (principal.tenant, principal.priority) == ("risk", 2)
    assert principal.key_limits.tokens_per_day == 999
    assert principal.tenant_limits.requests_per_minute == 7


async def test_auth_off_gives_anonymous_admin_and_warns(
    sqlite_storage: StorageSettings, caplog: pytest.LogCaptureFixture
) -> None:
    security = SecuritySettings(auth_enabled=False)
    gw = await Gateway.create(security, sqlite_storage)
    try:
        principal = await gw.authenticate(None, "127.0.0.1")
        gw.authorize(principal, "model:anything:invoke")
        assert principal.is_anonymous
        assert "authentication is OFF" in caplog.text
    finally:
        await gw.close()


@pytest.mark.parametrize(
    ("auth", "host", "ok"),
    [
        (False, "127.0.0.1", True),
        (False, "localhost", True),
        (False, "::1", True),
        (False, "0.0.0.0", False),
        (False, "10.0.0.5", False),
        (True, "0.0.0.0", True),
    ],
)
def test_auth_off_refuses_non_loopback_bind(auth: bool, host: str, ok: bool) -> None:
    security = SecuritySettings(auth_enabled=auth)
    if ok:
        check_bind_allowed(security, host)
    else:
        with pytest.raises(ConfigError, match="refusing to bind"):
            check_bind_allowed(security, host)


@pytest.mark.parametrize("change", ["revoke-key", "disable-user", "take-role", "edit-role"])
async def test_change_made_on_another_replica_applies_on_next_request(
    storage: StorageSettings, change: str
) -> None:
    first = await Gateway.create(SecuritySettings(), storage)
    second = await Gateway.create(SecuritySettings(), storage)
    try:
        first.directory.create_role("reader", ["model:*:invoke"])
        make_user(first, "ola", ["reader"])
        created = first.keys.create("ola")
        principal = await second.authenticate(bearer(created.secret), "127.0.0.1")  # cached
        second.authorize(principal, "model:m:invoke")
        if change == "revoke-key":
            first.keys.revoke(created.info.id)
        elif change == "disable-user":
            first.directory.set_user_disabled("ola", True)
        elif change == "take-role":
            first.directory.revoke_role("ola", "reader")
        else:
            first.directory.set_role_permissions("reader", ["kb:x:read"])
        try:
            after = await second.authenticate(bearer(created.secret), "127.0.0.1")
        except AuthenticationError:
            assert change in {"revoke-key", "disable-user"}
            return
        with pytest.raises(PermissionDeniedError):
            second.authorize(after, "model:m:invoke")
    finally:
        await first.close()
        await second.close()
