"""Admin operations checked against who asks: tenant scope and no handing out more.

Two rules hold for every action here, whatever the route or permission that led to it:

* **Tenant scope.** ``keys:manage:<tenant>``, ``users:manage:<tenant>`` and
  ``audit:read:<tenant>`` reach that tenant only; the two-segment forms reach every
  tenant. Lists are narrowed to the tenants in scope, reads of other tenants' keys,
  users or audit records are refused. Roles and tenants are global objects, so
  creating, changing or deleting them needs the global ``users:manage``, and so does
  verifying or checkpointing the whole audit chain (global ``audit:read``).
* **No escalation.** An actor may not create a key for, grant a role to, take a
  role from, or revoke a key of a user whose rights it does not hold itself, nor
  create or change a role to hold rights it lacks. Holding ``keys:manage`` alone
  therefore mints keys only for users with no more than ``keys:manage``.

Every method is synchronous database work run inside ``Gateway.admin_action``, so a
refusal here is audited as a denied admin action like any other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, Literal, TextIO

from luodi.errors import PermissionDeniedError
from luodi.security.audit import AuditFilter, AuditLog, Checkpoint, KeyUsage, VerifyReport
from luodi.security.directory import Directory, RoleInfo, TenantInfo, UserInfo
from luodi.security.keys import ApiKeyInfo, CreatedKey, KeyChanges, KeyStore
from luodi.security.passwords import PasswordStore
from luodi.security.principal import Limits, Principal
from luodi.security.rbac import grants, missing_rights, tenant_scope

__all__ = ["Administration"]


def _who(actor: Principal) -> str:
    return f"key {actor.key_id} (user {actor.user!r})"


class Administration:
    """Keys, users, roles, tenants and audit reads on behalf of an actor."""

    def __init__(
        self, directory: Directory, keys: KeyStore, audit_log: AuditLog, passwords: PasswordStore
    ) -> None:
        self.directory = directory
        self.keys = keys
        self.audit_log = audit_log
        self.passwords = passwords

    # -- checks ----------------------------------------------------------------

    @staticmethod
    def require(actor: Principal, right: str, tenant: str) -> None:
        """Refuse unless ``right`` (e.g. ``users:manage``) is granted in ``tenant``."""
        if not grants(actor.permissions, f"{right}:{tenant}"):
            raise PermissionDeniedError(
                f"{_who(actor)} lacks permission {right!r} in tenant {tenant!r}"
            )

    @staticmethod
    def require_global(actor: Principal, right: str) -> None:
        """Refuse unless ``right`` is granted in every tenant."""
        if not grants(actor.permissions, right):
            raise PermissionDeniedError(
                f"{_who(actor)} lacks permission {right!r} for every tenant "
                "(a tenant-scoped grant is not enough here)"
            )

    @staticmethod
    def require_covers(actor: Principal, wanted: Iterable[str], what: str) -> None:
        """Refuse when ``wanted`` holds rights the actor lacks (escalation)."""
        missing = missing_rights(actor.permissions, wanted)
        if missing:
            raise PermissionDeniedError(
                f"{_who(actor)} may not {what}: that needs rights it does not hold "
                f"({', '.join(missing)})"
            )

    def _scope(self, actor: Principal, right: str) -> list[str] | None:
        return tenant_scope(
            actor.permissions, right, (t.name for t in self.directory.list_tenants())
        )

    def _require_over_user(self, actor: Principal, right: str, user: str, what: str) -> str:
        tenant, rights = self.directory.rights_of(user)
        self.require(actor, right, tenant)
        self.require_covers(actor, rights, what)
        return tenant

    # -- keys ------------------------------------------------------------------

    def create_key(self, actor: Principal, user: str, **fields: Any) -> CreatedKey:
        """A key for ``user``; refused if ``user`` holds rights the actor lacks."""
        self._require_over_user(actor, "keys:manage", user, f"create a key for user {user!r}")
        return self.keys.create(user, **fields)

    def list_keys(
        self, actor: Principal, *, user: str | None = None, include_revoked: bool = False
    ) -> list[ApiKeyInfo]:
        """Keys in the actor's tenants (of one user if given)."""
        if user is not None:
            self.require(actor, "keys:manage", self.directory.rights_of(user)[0])
        keys = self.keys.list_keys(user=user, include_revoked=include_revoked)
        scope = self._scope(actor, "keys:manage")
        return keys if scope is None else [k for k in keys if k.tenant in scope]

    def revoke_key(self, actor: Principal, key_id: str) -> ApiKeyInfo:
        """Revoke a key of a user whose rights the actor holds."""
        info = self.keys.info(key_id)
        self._require_over_user(actor, "keys:manage", info.user, f"revoke key {key_id}")
        return self.keys.revoke(key_id)

    def update_key(self, actor: Principal, key_id: str, changes: KeyChanges) -> ApiKeyInfo:
        """Change a key (limits, priority, ...) of a user whose rights the actor holds."""
        info = self.keys.info(key_id)
        self._require_over_user(actor, "keys:manage", info.user, f"change key {key_id}")
        return self.keys.update(key_id, changes)

    def key_usage(self, actor: Principal, *, since_us: int) -> list[KeyUsage]:
        """Requests and tokens per key since ``since_us``, for keys in the actor's tenants.

        Read from the audit log (one record per request, on every replica).
        """
        flt = AuditFilter(since_us=since_us)
        scope = self._scope(actor, "keys:manage")
        if scope is not None:
            flt = dataclasses.replace(flt, tenants=tuple(scope))
        return self.audit_log.key_usage(flt)

    # -- users -----------------------------------------------------------------

    def _role_rights(self, roles: Iterable[str]) -> set[str]:
        return {p for role in roles for p in self.directory.get_role(role).permissions}

    def create_user(
        self, actor: Principal, name: str, *, tenant: str, roles: Sequence[str]
    ) -> UserInfo:
        """A user in a tenant in scope, with roles the actor could hold."""
        self.require(actor, "users:manage", tenant)
        self.require_covers(
            actor, self._role_rights(roles), f"create user {name!r} with {list(roles)}"
        )
        return self.directory.create_user(name, tenant=tenant, roles=list(roles))

    def list_users(self, actor: Principal, *, tenant: str | None = None) -> list[UserInfo]:
        """Users in the actor's tenants (of one tenant if given)."""
        if tenant is not None:
            self.require(actor, "users:manage", tenant)
        users = self.directory.list_users(tenant=tenant)
        scope = self._scope(actor, "users:manage")
        return users if scope is None else [u for u in users if u.tenant in scope]

    def grant_role(self, actor: Principal, user: str, role: str) -> UserInfo:
        """Give ``user`` a role whose rights the actor holds."""
        tenant, _rights = self.directory.rights_of(user)
        self.require(actor, "users:manage", tenant)
        self.require_covers(actor, self._role_rights([role]), f"grant role {role!r}")
        return self.directory.grant_role(user, role)

    def revoke_role(self, actor: Principal, user: str, role: str) -> UserInfo:
        """Take a role from a user whose rights the actor holds."""
        self._require_over_user(actor, "users:manage", user, f"take a role from user {user!r}")
        return self.directory.revoke_role(user, role)

    def set_user_disabled(self, actor: Principal, user: str, disabled: bool) -> UserInfo:
        """Disable or re-enable a user whose rights the actor holds."""
        self._require_over_user(actor, "users:manage", user, f"disable or enable user {user!r}")
        return self.directory.set_user_disabled(user, disabled)

    def set_password(self, actor: Principal, user: str, password: str) -> None:
        """Set the console sign-in password of a user whose rights the actor holds."""
        self._require_over_user(actor, "users:manage", user, f"set the password of user {user!r}")
        self.passwords.set(user, password)

    # -- roles and tenants (global objects) ------------------------------------

    def create_role(
        self, actor: Principal, name: str, permissions: list[str], *, description: str = ""
    ) -> RoleInfo:
        """A custom role holding only rights the actor holds."""
        self.require_global(actor, "users:manage")
        self.require_covers(actor, permissions, f"create role {name!r}")
        return self.directory.create_role(name, permissions, description=description)

    def set_role_permissions(self, actor: Principal, name: str, permissions: list[str]) -> RoleInfo:
        """Change a role; both its old and its new rights must be the actor's."""
        self.require_global(actor, "users:manage")
        old = self.directory.get_role(name).permissions
        self.require_covers(actor, [*old, *permissions], f"change role {name!r}")
        return self.directory.set_role_permissions(name, permissions)

    def delete_role(self, actor: Principal, name: str) -> None:
        """Delete a role whose rights the actor holds."""
        self.require_global(actor, "users:manage")
        self.require_covers(
            actor, self.directory.get_role(name).permissions, f"delete role {name!r}"
        )
        self.directory.delete_role(name)

    def list_roles(self, actor: Principal) -> list[RoleInfo]:
        """Every role (any ``users:manage`` scope may read them: they are global)."""
        return self.directory.list_roles()

    def create_tenant(
        self, actor: Principal, name: str, *, limits: Limits, pii_policy: str | None
    ) -> TenantInfo:
        """A new tenant (global ``users:manage``)."""
        self.require_global(actor, "users:manage")
        return self.directory.create_tenant(name, limits=limits, pii_policy=pii_policy)

    def update_tenant(
        self,
        actor: Principal,
        name: str,
        *,
        limits: Limits | None = None,
        pii_policy: str | None = None,
        clear_pii_policy: bool = False,
    ) -> TenantInfo:
        """Change a tenant's limits or PII policy (global ``users:manage``).

        A tenant's own administrator may not: its limits bound it.
        """
        self.require_global(actor, "users:manage")
        return self.directory.update_tenant(
            name, limits=limits, pii_policy=pii_policy, clear_pii_policy=clear_pii_policy
        )

    def list_tenants(self, actor: Principal) -> list[TenantInfo]:
        """Tenants in the actor's ``users:manage`` scope."""
        tenants = self.directory.list_tenants()
        scope = tenant_scope(actor.permissions, "users:manage", (t.name for t in tenants))
        return tenants if scope is None else [t for t in tenants if t.name in scope]

    # -- audit -----------------------------------------------------------------

    def audit_filter(self, actor: Principal, flt: AuditFilter) -> AuditFilter:
        """``flt`` narrowed to the tenants whose records the actor may read."""
        scope = self._scope(actor, "audit:read")
        if scope is None:
            return flt
        if flt.tenant is not None:
            self.require(actor, "audit:read", flt.tenant)
            return flt
        return dataclasses.replace(flt, tenants=tuple(scope))

    def query_audit(
        self, actor: Principal, flt: AuditFilter, *, limit: int
    ) -> list[dict[str, Any]]:
        """Records the actor may read."""
        return self.audit_log.query(self.audit_filter(actor, flt), limit=limit)

    def export_audit(
        self, actor: Principal, flt: AuditFilter, out: TextIO, *, fmt: Literal["jsonl", "csv"]
    ) -> int:
        """Export the records the actor may read."""
        return self.audit_log.export(self.audit_filter(actor, flt), out, fmt=fmt)

    def verify_audit(
        self, actor: Principal, checkpoints: Sequence[Checkpoint] = ()
    ) -> VerifyReport:
        """Verify the whole chain (global ``audit:read``)."""
        self.require_global(actor, "audit:read")
        return self.audit_log.verify(checkpoints)

    def checkpoint_audit(self, actor: Principal) -> tuple[VerifyReport, Checkpoint | None]:
        """Verify and sign the head (global ``audit:read``)."""
        self.require_global(actor, "audit:read")
        return self.audit_log.checkpoint()
