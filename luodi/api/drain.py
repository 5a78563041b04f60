"""Graceful shutdown: stop admitting, let requests in flight finish, end the rest cleanly.

On SIGTERM the server stops accepting connections (uvicorn), ``/health`` turns 503
so load balancers look elsewhere, and a request that still arrives on a kept-alive
connection is refused with 503 and Retry-After. Requests in flight run on for up to
``server.drain_timeout_s``; then each one still running is aborted: a stream ends
with a last chunk whose ``finish_reason`` is ``"error"`` and an error event, a
non-streaming request gets 503 with Retry-After, and both are audited. Only then do
the engines stop, so nothing is torn down under a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Protocol

__all__ = ["SHUTTING_DOWN", "Abortable", "Drain"]

log = logging.getLogger(__name__)

SHUTTING_DOWN = "the server is shutting down; retry the request"
"""What an aborted request is told."""


class Abortable(Protocol):
    """A request in flight that can be ended early (the pipeline's ``Exchange``)."""

    def abort(self, reason: str) -> None: ...


class Drain:
    """The requests in flight, and whether the server is draining.

    Requests are held weakly: one that ends without leaving (a bug, or a path that
    writes no audit record) must not be waited for, or kept alive, forever.
    """

    def __init__(self) -> None:
        self._inflight: weakref.WeakValueDictionary[int, Abortable] = weakref.WeakValueDictionary()
        self.draining = False
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._inflight)

    def enter(self, request: Abortable) -> None:
        self._inflight[id(request)] = request

    def leave(self, request: Abortable) -> None:
        self._inflight.pop(id(request), None)

    def begin(self, timeout_s: float) -> None:
        """Start draining (call on the event loop): abort what still runs after ``timeout_s``."""
        if self.draining:
            return
        self.draining = True
        log.info("draining: %d request(s) in flight get %.0fs to finish", len(self), timeout_s)
        self._timer = asyncio.get_running_loop().call_later(timeout_s, self.abort_all)

    def abort_all(self, reason: str = SHUTTING_DOWN) -> None:
        """End every request still in flight (each writes its own audit record)."""
        if self._inflight:
            log.warning("drain time is up: aborting %d request(s)", len(self._inflight))
        for request in list(self._inflight.values()):
            request.abort(reason)

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait for the requests in flight to finish; False if some outlived ``timeout_s``."""
        if self._timer is not None:
            self._timer.cancel()
        deadline = time.monotonic() + timeout_s
        while self._inflight:  # bounded: requests unwinding after an abort or a cancel
            if time.monotonic() > deadline:
                log.error("%d request(s) still running at shutdown", len(self))
                return False
            await asyncio.sleep(0.02)
        return True
