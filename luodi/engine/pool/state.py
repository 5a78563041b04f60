"""One pooled model: its settings, where it stands (``ModelState``) and who is using it."""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field

from luodi.config.engine import EngineSettings
from luodi.config.models import AdapterSettings
from luodi.engine.base import LocalEngine
from luodi.engine.pool.memory import MemoryEstimate

__all__ = ["ModelState", "PoolEntry"]


class ModelState(enum.StrEnum):
    """Where a pooled model stands."""

    UNLOADED = "unloaded"
    """Not in memory; its first request loads it."""
    LOADING = "loading"
    """Being loaded (its memory is already counted against the budget)."""
    LOADED = "loaded"
    """Serving."""
    UNLOADING = "unloading"
    """Being freed: idle past its keep-alive, evicted, or unloaded by an admin."""


@dataclass(eq=False)
class PoolEntry:
    """A configured model as the pool tracks it; touched on the event loop only."""

    name: str
    settings: EngineSettings
    memory: MemoryEstimate
    context_length: int
    """The longest request it will take, known before it loads."""
    quantization: str | None = None
    aliases: tuple[str, ...] = ()
    pinned: bool = False
    keep_alive_s: float = 300.0
    state: ModelState = ModelState.UNLOADED
    engine: LocalEngine | None = None
    in_flight: int = 0
    """Requests running on it: never unloaded while above zero."""
    last_used: float = field(default_factory=time.monotonic)
    loaded_at: float | None = None
    loads: int = 0
    """Times it was loaded since the server started."""
    last_error: str | None = None
    task: asyncio.Task[None] | None = None
    """The load or unload under way, which later callers await instead of repeating."""
    adapters: dict[str, AdapterSettings] = field(default_factory=dict)
    """LoRA adapters by name: configured ones and those added at run time, all loaded
    with the model each time it loads."""

    def __post_init__(self) -> None:
        if not self.adapters:
            self.adapters = {a.name: a for a in self.settings.adapters}

    @property
    def names(self) -> tuple[str, ...]:
        """Its name, then its aliases."""
        return (self.name, *self.aliases)

    @property
    def idle(self) -> bool:
        return self.state is ModelState.LOADED and self.in_flight == 0

    @property
    def holds_memory(self) -> bool:
        """Counted against the budget: loading, loaded, or still being freed."""
        return self.state is not ModelState.UNLOADED

    def expires_in(self, now: float | None = None) -> float | None:
        """Seconds until keep-alive unloads it (None: pinned, busy or not loaded)."""
        if self.pinned or not self.idle:
            return None
        now = time.monotonic() if now is None else now
        return max(0.0, self.last_used + self.keep_alive_s - now)

    def describe(self) -> dict[str, object]:
        """Its state and memory, for /v1/models, /admin/models and ``luodi model ps``."""
        expires = self.expires_in()
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "state": self.state.value,
            "pinned": self.pinned,
            "keep_alive_s": None if self.pinned else self.keep_alive_s,
            "expires_in_s": None if expires is None else round(expires, 1),
            "in_flight": self.in_flight,
            "loads": self.loads,
            "memory": self.memory.to_json(),
            "adapters": [{"name": a.name, "scale": a.scale} for a in self.adapters.values()],
            "last_error": self.last_error,
        }
