"""The HTTP server: uvicorn, draining on SIGTERM or Ctrl-C before it stops."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType

import uvicorn

from luodi.api.drain import Drain

__all__ = ["DrainingServer"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose first SIGTERM or Ctrl-C drains (``luodi.api.drain``).

    uvicorn stops accepting connections and waits; the drain refuses what still
    arrives, aborts what runs past ``drain_timeout_s``, and the process exits 0
    once the app has shut down. A second Ctrl-C quits at once, as in uvicorn.

    Args:
        config: uvicorn's config; its ``timeout_graceful_shutdown`` is set here to
            the drain time plus a margin, as a backstop.
        drain: The app's ``AppState.drain``.
        drain_timeout_s: How long requests in flight may run on.
        gc_freeze: Freeze the startup heap once started (``server.gc_freeze``).
    """

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        drain: Drain,
        drain_timeout_s: float,
        gc_freeze: bool = False,
    ) -> None:
        config.timeout_graceful_shutdown = int(drain_timeout_s) + 5
        super().__init__(config)
        self._drain = drain
        self._drain_timeout_s = drain_timeout_s
        self._gc_freeze = gc_freeze
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self._gc_freeze and not self.should_exit:
            # What startup built (the model's vocabulary, indexes, the PII lexicon) lives
            # as long as the process: collections need not scan it again and again.
            gc.collect()
            gc.freeze()
            log.info("gc: %d startup objects frozen", gc.get_freeze_count())

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and not self._loop.is_closed():
            # A signal handler interrupts the loop's own thread: hand over safely.
            self._loop.call_soon_threadsafe(self._drain.begin, self._drain_timeout_s)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's own re-raises the signal after shutdown, so an orderly stop on
        # SIGTERM would exit as killed (143); a drained server exits 0.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in _SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
