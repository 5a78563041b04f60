"""Knowing whether a request has written its audit record, so none goes without one.

Routes that run the gateway pipeline write a detailed record; others (knowledge
search and listing, admin reads, a body the schema refuses) may write none. The
HTTP layer opens a ``RequestAudit`` per request; ``Gateway.audit`` marks it, and what
is still unmarked when the response is sent gets a plain record of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["RequestAudit", "note_written", "request_audit"]


@dataclass
class RequestAudit:
    """Whether the current request has written a record (shared with its child tasks)."""

    written: bool = False


_CURRENT: ContextVar[RequestAudit | None] = ContextVar("luodi_request_audit", default=None)


@contextmanager
def request_audit() -> Iterator[RequestAudit]:
    """Track the records written while serving one request (and tasks it starts)."""
    current = RequestAudit()
    token = _CURRENT.set(current)
    try:
        yield current
    finally:
        _CURRENT.reset(token)


def note_written() -> None:
    """Mark the current request, if one is tracked, as having its record."""
    current = _CURRENT.get()
    if current is not None:
        current.written = True
