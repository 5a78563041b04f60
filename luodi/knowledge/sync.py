"""The sync scheduler: runs due sources on their cron schedules until stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from luodi.knowledge.service import KnowledgeService

__all__ = ["SyncScheduler"]

_log = logging.getLogger(__name__)


class SyncScheduler:
    """Wakes at the next due time of any source and syncs what is due.

    Args:
        service: the knowledge service.
        max_idle_s: longest wait between checks (new sources are noticed by then).
        clock: current time.
    """

    def __init__(
        self,
        service: KnowledgeService,
        *,
        max_idle_s: float = 300.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._service = service
        self._max_idle_s = max_idle_s
        self._clock = clock
        self._stop = asyncio.Event()

    def seconds_until_next(self, now: datetime) -> float:
        """Seconds to the earliest next run of any scheduled source, capped at ``max_idle_s``."""
        times = [t for s in self._service.sources() if (t := self._service.next_sync_at(s))]
        if not times:
            return self._max_idle_s
        return max(0.0, min(self._max_idle_s, (min(times) - now).total_seconds()))

    async def run(self) -> None:
        """Sync due sources until ``stop()``; a failing sync is logged and retried next time."""
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self._service.run_due, self._clock())
            except Exception:  # one bad source must not stop the scheduler; it is logged
                _log.exception("scheduled knowledge-base sync failed")
            wait = self.seconds_until_next(self._clock())
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=max(wait, 1.0))
            except TimeoutError:
                continue

    def stop(self) -> None:
        """Ask ``run`` to return after the current sync."""
        self._stop.set()
