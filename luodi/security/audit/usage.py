"""Per-key usage read from the audit log: requests, refusals and tokens since a time.

The audit log holds one record per API request on every replica, with the key, its
user and tenant and the tokens sent both ways, so it answers "who used how much"
without counters of its own (the quota counters exist only for keys with limits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Select, Table, case, func, select

from luodi.security.audit.event import Decision
from luodi.storage import AuditRecordRow

if TYPE_CHECKING:
    from luodi.security.audit.log import AuditFilter

__all__ = ["KeyUsage", "key_usage_query"]

_RECORDS = cast(Table, AuditRecordRow.__table__)


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """One key's API requests in a period (admin actions are not counted)."""

    key_id: str
    user: str | None
    tenant: str | None
    requests: int
    denied: int
    prompt_tokens: int
    completion_tokens: int
    last_us: int

    @classmethod
    def from_row(cls, row: Any) -> KeyUsage:
        """A row of ``key_usage_query``."""
        return cls(
            key_id=row.key_id,
            user=row.user,
            tenant=row.tenant,
            requests=int(row.requests),
            denied=int(row.denied or 0),
            prompt_tokens=int(row.prompt_tokens or 0),
            completion_tokens=int(row.completion_tokens or 0),
            last_us=int(row.last_us),
        )


def key_usage_query(flt: AuditFilter) -> Select[Any]:
    """Request records matching ``flt``, summed per key, the busiest key first."""
    c = _RECORDS.c
    denied = func.sum(case((c.decision == Decision.DENIED.value, 1), else_=0))
    tokens = func.sum(c.prompt_tokens + c.completion_tokens)
    query = select(
        c.key_id,
        c.user,
        c.tenant,
        func.count().label("requests"),
        denied.label("denied"),
        func.sum(c.prompt_tokens).label("prompt_tokens"),
        func.sum(c.completion_tokens).label("completion_tokens"),
        func.max(c.ts_us).label("last_us"),
    ).where(c.kind == "request", c.key_id.is_not(None))
    query = flt.apply(query).group_by(c.key_id, c.user, c.tenant)
    return query.order_by(tokens.desc(), func.count().desc(), c.key_id)
