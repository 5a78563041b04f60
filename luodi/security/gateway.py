"""The security gateway: authenticate, authorize, limit, and audit at the end.

``Gateway`` is the one object the API layer holds; it is built from settings by
``Gateway.create`` and owns the database, the quota store and the audit writer.
Nothing here is a module global.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from luodi.config.security import SecuritySettings
from luodi.config.storage import StorageSettings
from luodi.errors import ConfigError, LuodiError, PermissionDeniedError
from luodi.security.administration import Administration
from luodi.security.audit import (
    AuditEvent,
    AuditLog,
    AuditWriter,
    ChainKey,
    CheckpointExporter,
    Decision,
)
from luodi.security.audit.coverage import note_written
from luodi.security.client_address import TrustedProxies, client_address
from luodi.security.directory import DEFAULT_TENANT, Directory
from luodi.security.keys import KeyStore, parse_bearer
from luodi.security.local_guard import is_loopback
from luodi.security.passwords import PasswordStore
from luodi.security.principal import ANONYMOUS_KEY_ID, Limits, Principal
from luodi.security.quota_stores import build_quota_store
from luodi.security.quotas import Limiter, QuotaStore, Reservation
from luodi.security.rbac import SCOPED_RESOURCES, authorize, grants_in_some_tenant
from luodi.storage import AuditChainHeadRow, Database

__all__ = ["Gateway", "check_bind_allowed", "is_loopback"]

_log = logging.getLogger(__name__)
T = TypeVar("T")


def check_bind_allowed(security: SecuritySettings, host: str) -> None:
    """Refuse to serve without authentication on anything but loopback.

    Raises:
        ConfigError: ``auth_enabled`` is off and ``host`` is not a loopback address.
    """
    if not security.auth_enabled and not is_loopback(host):
        raise ConfigError(
            f"security.auth_enabled is off: refusing to bind non-loopback address {host!r}; "
            "turn authentication on or bind 127.0.0.1"
        )


def _ip_allowed(client_ip: str, networks: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in networks)


def _check_chain_key(db: Database, key: ChainKey | None) -> None:
    """Refuse to append unkeyed records to a keyed chain; warn about an unkeyed one.

    Raises:
        ConfigError: The chain head is keyed and no audit key is configured.
    """
    with db.session() as session:
        head = session.get(AuditChainHeadRow, 1)
    head_key = head.key_id if head is not None else None
    if key is None:
        if head_key is not None:
            raise ConfigError(
                f"the audit chain is keyed (key {head_key}) but security.audit.key is not "
                "configured: configure it, or the chain would continue unkeyed"
            )
        _log.warning(
            "the audit chain is not keyed (security.audit.key unset): anyone who can write "
            "the database can rewrite it undetected"
        )
    elif head_key is not None and head_key != key.key_id:
        _log.warning(
            "audit key changed (%s -> %s): the next record starts a new keyed segment",
            head_key,
            key.key_id,
        )


class Gateway:
    """Authentication, RBAC, quotas and audit for every API and admin request."""

    def __init__(
        self,
        security: SecuritySettings,
        db: Database,
        store: QuotaStore,
        writer: AuditWriter,
        audit_key: ChainKey | None = None,
    ) -> None:
        """Use ``Gateway.create``; this only wires already-built parts together."""
        self.settings = security
        self.db = db
        self.keys = KeyStore(db, security.quotas)
        self.directory = Directory(db)
        self.audit_log = AuditLog(db, retention_days=security.audit.retention_days, key=audit_key)
        self.admin = Administration(self.directory, self.keys, self.audit_log, PasswordStore(db))
        self.trusted_proxies = TrustedProxies(security.trusted_proxies)
        self._checkpoints: CheckpointExporter | None = None
        self._store = store
        self._limiter = Limiter(store)
        self._writer = writer
        self._anonymous = Principal(
            key_id=ANONYMOUS_KEY_ID,
            user="anonymous",
            tenant=DEFAULT_TENANT,
            roles=frozenset({"admin"}),
            permissions=frozenset({"*"}),
            key_limits=Limits(**security.quotas.per_key.model_dump()),
            tenant_limits=Limits(**security.quotas.per_tenant.model_dump()),
        )

    @classmethod
    async def create(cls, security: SecuritySettings, storage: StorageSettings) -> Gateway:
        """Migrate the database, create built-in roles, open stores, start the writer."""
        db = Database(storage)
        if storage.migrate_on_start:
            await asyncio.to_thread(db.migrate)
        await asyncio.to_thread(Directory(db).ensure_defaults)
        strict = security.require_strict_key_permissions
        audit_key = await asyncio.to_thread(ChainKey.from_settings, security.audit, strict=strict)
        await asyncio.to_thread(_check_chain_key, db, audit_key)
        if not security.auth_enabled:
            _log.warning(
                "authentication is OFF (security.auth_enabled=false): every caller is an "
                "anonymous admin; only loopback addresses may be bound"
            )
        store = build_quota_store(security)
        writer = AuditWriter(db, security.audit, audit_key)
        writer.start()
        gateway = cls(security, db, store, writer, audit_key)
        audit = security.audit
        if audit.enabled and (audit.checkpoint_file or audit.checkpoint_command):
            gateway._checkpoints = CheckpointExporter(
                gateway.audit_log.head,
                file=audit.checkpoint_file,
                command=audit.checkpoint_command,
                interval_s=audit.checkpoint_interval_s,
            )
            gateway._checkpoints.start()
        return gateway

    async def close(self) -> None:
        """Flush the audit log (then export a last checkpoint), close stores and pool."""
        await self._writer.close()
        if self._checkpoints is not None:
            await self._checkpoints.close()
        await self._store.close()
        self.keys.close()
        self.db.dispose()

    def check_bind_allowed(self, host: str) -> None:
        """See the module function ``check_bind_allowed``."""
        check_bind_allowed(self.settings, host)

    def client_address(self, scope: Mapping[str, Any]) -> str:
        """The client's address for an ASGI scope, behind ``security.trusted_proxies`` only."""
        return client_address(scope, self.trusted_proxies)

    async def authenticate(self, authorization: str | None, client_ip: str) -> Principal:
        """Resolve an ``Authorization: Bearer sk-luodi-...`` header to a Principal.

        Raises:
            AuthenticationError: Missing, malformed, unknown, revoked or expired key.
            PermissionDeniedError: The key may not be used from ``client_ip``.
        """
        if not self.settings.auth_enabled:
            return self._anonymous
        secret = parse_bearer(authorization)
        # The cache check is one primary-key read: inline on SQLite (microseconds),
        # in a thread on PostgreSQL (a network round trip).
        if self.db.is_sqlite:
            principal = self.keys.cached(secret)
        else:
            principal = await asyncio.to_thread(self.keys.cached, secret)
        if principal is None:
            principal = await asyncio.to_thread(self.keys.resolve, secret)
        if principal.ip_allowlist is not None and not _ip_allowed(
            client_ip, principal.ip_allowlist
        ):
            raise PermissionDeniedError(
                f"API key {principal.key_id} may not be used from {client_ip}"
            )
        return principal

    def authorize(self, principal: Principal, permission: str) -> None:
        """Refuse with PermissionDeniedError unless ``permission`` is granted."""
        authorize(principal, permission)

    async def admit(self, principal: Principal, *, tokens: int, reserve: int = 0) -> Reservation:
        """Apply rate limits and quotas before a request runs (RateLimitError on excess).

        ``tokens`` (the prompt) and ``reserve`` (the completion limit) are held in the
        token budgets until ``settle`` replaces them with what was really used.
        """
        return await self._limiter.admit(principal, tokens=tokens, reserve=reserve)

    async def settle(self, reservation: Reservation, *, tokens: int) -> None:
        """Charge what a request really used in place of its reservation (any ending)."""
        await self._limiter.settle(reservation, tokens=tokens)

    async def record_usage(self, principal: Principal, *, tokens: int) -> None:
        """Charge the tokens a finished request used."""
        await self._limiter.record_usage(principal, tokens=tokens)

    async def audit(self, event: AuditEvent) -> None:
        """Append one record; returns once it is durable (see ``AuditWriter``)."""
        note_written()  # the request it belongs to needs no record of its own
        if self.settings.audit.enabled:
            await self._writer.write(event)

    async def admin_action(
        self,
        actor: Principal,
        *,
        action: str,
        permission: str,
        detail: dict[str, Any],
        run: Callable[[], T],
        source_ip: str | None = None,
        any_tenant: bool = False,
    ) -> T:
        """Authorize, run and audit one admin action (REST and CLI both come here).

        Args:
            actor: Who asks.
            action: Audit endpoint name, e.g. ``keys.create``.
            permission: Permission needed, e.g. ``keys:manage``.
            detail: Arguments to record (never a secret).
            run: The synchronous database work; runs in a worker thread.
            source_ip: The client's address, if any.
            any_tenant: ``permission`` is tenant-scoped and held in some tenant is
                enough here, because ``run`` checks the tenant it acts in
                (``Administration`` does); otherwise every tenant is needed.

        Raises:
            PermissionDeniedError: ``actor`` lacks ``permission``, or ``run`` refused
                (the refusal is audited).
        """
        event = AuditEvent.for_request(
            actor, endpoint=action, kind="admin", source_ip=source_ip, detail=detail
        )
        try:
            if any_tenant and permission.split(":")[0] in SCOPED_RESOURCES:
                if not grants_in_some_tenant(actor.permissions, permission):
                    raise PermissionDeniedError(
                        f"key {actor.key_id} (user {actor.user!r}) lacks permission "
                        f"{permission!r} in any tenant"
                    )
            else:
                self.authorize(actor, permission)
            result = await asyncio.to_thread(run)
        except LuodiError as exc:
            event.decision, event.reason = Decision.DENIED, exc.message
            await self.audit(event)
            raise
        await self.audit(event)
        return result
