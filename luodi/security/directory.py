"""The directory of tenants, users and roles (synchronous, database-backed).

Built-in roles (``luodi.security.rbac.BUILTIN_ROLES``) are created or refreshed at
start and cannot be edited or deleted; custom roles are any set of valid patterns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from luodi.errors import InvalidRequestError, NotFoundError
from luodi.security._epoch import bump_epoch
from luodi.security.principal import Limits
from luodi.security.rbac import BUILTIN_ROLES, validate_permission
from luodi.storage import Database, RoleRow, TenantRow, UserRoleRow, UserRow

__all__ = ["DEFAULT_TENANT", "Directory", "RoleInfo", "TenantInfo", "UserInfo"]

DEFAULT_TENANT = "default"
"""Tenant of users created without one."""


@dataclass(frozen=True, slots=True)
class TenantInfo:
    """A tenant and its own limits (``None`` fields fall back to the defaults)."""

    name: str
    limits: Limits
    pii_policy: str | None


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user, their tenant and role names."""

    name: str
    tenant: str
    roles: list[str]
    disabled: bool


@dataclass(frozen=True, slots=True)
class RoleInfo:
    """A role and its permission patterns."""

    name: str
    description: str
    builtin: bool
    permissions: list[str]


def _now_us() -> int:
    return time.time_ns() // 1000


def _tenant_info(row: TenantRow) -> TenantInfo:
    limits = Limits(row.requests_per_minute, row.tokens_per_minute, row.tokens_per_day)
    return TenantInfo(name=row.name, limits=limits, pii_policy=row.pii_policy)


def _user_info(row: UserRow) -> UserInfo:
    return UserInfo(
        name=row.name,
        tenant=row.tenant.name,
        roles=sorted(role.name for role in row.roles),
        disabled=row.disabled,
    )


def _role_info(row: RoleRow) -> RoleInfo:
    return RoleInfo(
        name=row.name,
        description=row.description,
        builtin=row.builtin,
        permissions=list(row.permissions),
    )


class Directory:
    """Tenants, users and roles, each operation one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- bootstrap -------------------------------------------------------------

    def ensure_defaults(self) -> None:
        """Create the default tenant and the built-in roles; refresh their permissions."""
        with self._db.session() as session:
            if session.scalar(select(TenantRow).where(TenantRow.name == DEFAULT_TENANT)) is None:
                session.add(TenantRow(name=DEFAULT_TENANT, created_us=_now_us()))
            for name, (description, permissions) in BUILTIN_ROLES.items():
                row = session.scalar(select(RoleRow).where(RoleRow.name == name))
                if row is None:
                    session.add(
                        RoleRow(
                            name=name,
                            description=description,
                            builtin=True,
                            permissions=list(permissions),
                        )
                    )
                elif row.permissions != list(permissions) or not row.builtin:
                    row.permissions = list(permissions)
                    row.description = description
                    row.builtin = True

    # -- tenants ---------------------------------------------------------------

    def create_tenant(
        self, name: str, *, limits: Limits | None = None, pii_policy: str | None = None
    ) -> TenantInfo:
        """Create a tenant.

        Raises:
            InvalidRequestError: The name is taken or empty.
        """
        limits = limits or Limits()
        if not name:
            raise InvalidRequestError("tenant name must not be empty", param="name")
        if set(name) & set(":*?[]"):
            # The name is a segment of tenant-scoped permissions (users:manage:<tenant>).
            raise InvalidRequestError(
                f"tenant name {name!r} may not contain ':', '*', '?', '[' or ']'", param="name"
            )
        try:
            with self._db.session() as session:
                row = TenantRow(
                    name=name,
                    created_us=_now_us(),
                    requests_per_minute=limits.requests_per_minute,
                    tokens_per_minute=limits.tokens_per_minute,
                    tokens_per_day=limits.tokens_per_day,
                    pii_policy=pii_policy,
                )
                session.add(row)
                session.flush()
                return _tenant_info(row)
        except IntegrityError as exc:
            raise InvalidRequestError(f"tenant {name!r} already exists", param="name") from exc

    def update_tenant(
        self,
        name: str,
        *,
        limits: Limits | None = None,
        pii_policy: str | None = None,
        clear_pii_policy: bool = False,
    ) -> TenantInfo:
        """Change a tenant's limits (all three at once) or PII policy; None keeps them.

        Effective from each of its keys' next request on (the security epoch is bumped:
        a key's Principal carries its tenant's limits and policy).

        Raises:
            NotFoundError: No such tenant.
        """
        with self._db.session() as session:
            row = self._tenant(session, name)
            if limits is not None:
                row.requests_per_minute = limits.requests_per_minute
                row.tokens_per_minute = limits.tokens_per_minute
                row.tokens_per_day = limits.tokens_per_day
            if pii_policy is not None or clear_pii_policy:
                row.pii_policy = pii_policy
            bump_epoch(session)
            session.flush()
            return _tenant_info(row)

    def list_tenants(self) -> list[TenantInfo]:
        """Every tenant, by name."""
        with self._db.session() as session:
            return [_tenant_info(r) for r in session.scalars(select(TenantRow).order_by("name"))]

    # -- users -----------------------------------------------------------------

    def create_user(
        self, name: str, *, tenant: str = DEFAULT_TENANT, roles: list[str] | None = None
    ) -> UserInfo:
        """Create a user in an existing tenant with existing roles.

        Raises:
            NotFoundError: Unknown tenant or role.
            InvalidRequestError: The name is taken or empty.
        """
        if not name:
            raise InvalidRequestError("user name must not be empty", param="name")
        try:
            with self._db.session() as session:
                tenant_row = self._tenant(session, tenant)
                row = UserRow(name=name, tenant=tenant_row, created_us=_now_us())
                row.roles = [self._role(session, r) for r in roles or []]
                session.add(row)
                session.flush()
                return _user_info(row)
        except IntegrityError as exc:
            raise InvalidRequestError(f"user {name!r} already exists", param="name") from exc

    def list_users(self, *, tenant: str | None = None) -> list[UserInfo]:
        """Users, by name, optionally of one tenant."""
        with self._db.session() as session:
            query = select(UserRow).order_by(UserRow.name)
            if tenant is not None:
                query = query.join(TenantRow).where(TenantRow.name == tenant)
            return [_user_info(r) for r in session.scalars(query)]

    def grant_role(self, user: str, role: str) -> UserInfo:
        """Give a user a role (idempotent)."""
        with self._db.session() as session:
            bump_epoch(session)
            row = self._user(session, user)
            role_row = self._role(session, role)
            if role_row not in row.roles:
                row.roles.append(role_row)
            return _user_info(row)

    def revoke_role(self, user: str, role: str) -> UserInfo:
        """Take a role from a user (idempotent)."""
        with self._db.session() as session:
            bump_epoch(session)
            row = self._user(session, user)
            row.roles = [r for r in row.roles if r.name != role]
            return _user_info(row)

    def set_user_disabled(self, user: str, disabled: bool) -> UserInfo:
        """Disable (every key refused from the next request on) or re-enable a user."""
        with self._db.session() as session:
            bump_epoch(session)
            row = self._user(session, user)
            row.disabled = disabled
            return _user_info(row)

    # -- roles -----------------------------------------------------------------

    def create_role(self, name: str, permissions: list[str], *, description: str = "") -> RoleInfo:
        """Create a custom role.

        Raises:
            InvalidRequestError: A bad permission pattern, or the name is taken.
        """
        if not name:
            raise InvalidRequestError("role name must not be empty", param="name")
        checked = [validate_permission(p) for p in permissions]
        try:
            with self._db.session() as session:
                row = RoleRow(
                    name=name, description=description, builtin=False, permissions=checked
                )
                session.add(row)
                session.flush()
                return _role_info(row)
        except IntegrityError as exc:
            raise InvalidRequestError(f"role {name!r} already exists", param="name") from exc

    def set_role_permissions(self, name: str, permissions: list[str]) -> RoleInfo:
        """Replace a custom role's permissions; effective on each holder's next request."""
        checked = [validate_permission(p) for p in permissions]
        with self._db.session() as session:
            bump_epoch(session)
            row = self._role(session, name)
            self._refuse_builtin(row)
            row.permissions = checked
            return _role_info(row)

    def delete_role(self, name: str) -> None:
        """Delete a custom role and take it from every user."""
        with self._db.session() as session:
            bump_epoch(session)
            row = self._role(session, name)
            self._refuse_builtin(row)
            session.execute(delete(UserRoleRow).where(UserRoleRow.role_id == row.id))
            session.delete(row)

    def list_roles(self) -> list[RoleInfo]:
        """Every role, by name."""
        with self._db.session() as session:
            return [_role_info(r) for r in session.scalars(select(RoleRow).order_by("name"))]

    def get_role(self, name: str) -> RoleInfo:
        """One role (NotFoundError if unknown)."""
        with self._db.session() as session:
            return _role_info(self._role(session, name))

    def rights_of(self, user: str) -> tuple[str, frozenset[str]]:
        """A user's tenant and every permission pattern its roles grant.

        Raises:
            NotFoundError: No such user.
        """
        with self._db.session() as session:
            row = self._user(session, user)
            permissions = frozenset(p for role in row.roles for p in role.permissions)
            return row.tenant.name, permissions

    # -- lookups ---------------------------------------------------------------

    @staticmethod
    def _refuse_builtin(row: RoleRow) -> None:
        if row.builtin:
            raise InvalidRequestError(f"built-in role {row.name!r} cannot be changed")

    @staticmethod
    def _tenant(session: Session, name: str) -> TenantRow:
        return _by_name(session, TenantRow, name, "tenant")

    @staticmethod
    def _user(session: Session, name: str) -> UserRow:
        return _by_name(session, UserRow, name, "user")

    @staticmethod
    def _role(session: Session, name: str) -> RoleRow:
        return _by_name(session, RoleRow, name, "role")


_Named = TypeVar("_Named", TenantRow, UserRow, RoleRow)


def _by_name(session: Session, row_type: type[_Named], name: str, what: str) -> _Named:
    """The row called ``name``; NotFoundError ("unknown tenant 'x'") when there is none."""
    row = session.scalar(select(row_type).where(row_type.name == name))
    if row is None:
        raise NotFoundError(f"unknown {what} {name!r}")
    return row
