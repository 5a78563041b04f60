"""Hand-off of engine events to the asyncio side: one wake-up per event loop per step."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from luodi.engine.types import GenerationEvent
from luodi.errors import LuodiError

__all__ = ["Outbox", "Stream"]

Item = GenerationEvent | LuodiError


@dataclass(slots=True)
class Stream:
    """Where one request's events go: a queue owned by the caller's event loop."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Item]


class Outbox:
    """Collects a step's events and delivers them per event loop in one call.

    ``call_soon_threadsafe`` writes to the loop's wake-up pipe on every call; with
    32 streams that was 32 system calls and as many loop wake-ups per step, taken
    from the cores llama.cpp's threads decode on. Used by the engine thread only.
    """

    def __init__(self) -> None:
        self._pending: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue[Item], Item]]] = {}

    def put(self, stream: Stream, item: Item) -> None:
        self._pending.setdefault(stream.loop, []).append((stream.queue, item))

    def flush(self) -> None:
        """Deliver everything put since the last flush, in order."""
        pending, self._pending = self._pending, {}
        for loop, items in pending.items():
            # A caller whose event loop has closed can no longer listen; nothing to do.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_deliver, items)


def _deliver(items: list[tuple[asyncio.Queue[Item], Item]]) -> None:
    for queue, item in items:
        queue.put_nowait(item)
