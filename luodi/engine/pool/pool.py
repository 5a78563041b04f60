"""The model pool: every embedded model, loaded on demand within one memory budget.

Ollama's behaviour, on llama.cpp in this process:

* **On demand.** A request for an unloaded model loads it; requests that arrive
  while it loads wait for that one load (``PoolEntry.task``), never start another.
* **Off the loop.** A load runs on the model's own engine thread (``engine.start``
  awaits it), so every other model keeps serving while one loads.
* **Budget.** Before a load, the pool adds the model's estimated RAM to what the
  loaded and loading models hold; over ``engine.pool.memory_budget_mb`` it unloads
  the least recently used idle on-demand model, and again, until the new one fits.
  When nothing more can go (pinned, busy), the load is refused with
  ``InsufficientMemoryError`` naming the numbers: nothing was allocated.
* **Keep-alive.** An on-demand model idle for its keep-alive is unloaded.
* **Never under a request.** A model with requests in flight is not unloaded by
  keep-alive, eviction or an admin.

Every method runs on the server's event loop; the only blocking work (loading and
freeing llama.cpp models) happens on engine threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

from luodi.config.models import AdapterSettings, EmbeddedModelSettings
from luodi.engine.base import LocalEngine
from luodi.engine.pool.memory import MemoryBudget, format_bytes
from luodi.engine.pool.state import ModelState, PoolEntry
from luodi.engine.types import GenerationEvent, GenerationRequest
from luodi.errors import (
    InsufficientMemoryError,
    InvalidRequestError,
    LuodiError,
    ModelLoadError,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
)

__all__ = ["AdapterHost", "EngineBuilder", "EngineStarter", "EntryMaker", "ModelPool"]

log = logging.getLogger(__name__)

EngineBuilder = Callable[[PoolEntry], LocalEngine]
"""Builds (does not start) the engine of an entry."""

EngineStarter = Callable[[LocalEngine], Awaitable[None]]
EntryMaker = Callable[[EmbeddedModelSettings], PoolEntry]
"""Sizes a model registered at run time from its GGUF header (blocking: run it off-loop)."""
"""Starts a built engine (loads the model, checks its chat template)."""

_REAP_MIN_S, _REAP_MAX_S = 0.05, 5.0


@runtime_checkable
class AdapterHost(Protocol):
    """An engine that serves LoRA adapters (the embedded llama.cpp engine)."""

    @property
    def adapters(self) -> dict[str, AdapterSettings]: ...

    async def add_adapter(self, adapter: AdapterSettings) -> None: ...

    def generate(
        self, request: GenerationRequest, *, adapter: str | None = None
    ) -> AsyncIterator[GenerationEvent]: ...


class ModelPool:
    """The embedded models a server runs, by name and alias.

    Args:
        entries: Every configured model; those with an engine already are loaded.
        budget: The RAM they share.
        build: Makes an entry's engine.
        start: Starts it (``create_app`` also compiles its chat template here).
    """

    def __init__(
        self,
        entries: Iterable[PoolEntry],
        budget: MemoryBudget,
        *,
        build: EngineBuilder,
        start: EngineStarter,
        describe: EntryMaker | None = None,
    ) -> None:
        self.budget = budget
        self._build = build
        self._start = start
        self._describe = describe
        self._entries: dict[str, PoolEntry] = {}
        self._names: dict[str, PoolEntry] = {}
        for entry in entries:
            self._add(entry)
        self._room = asyncio.Lock()
        """Held while a load decides what to evict and claims its memory."""
        self._changed = asyncio.Condition()
        self._reaper: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[], None]] = []

    def _add(self, entry: PoolEntry) -> None:
        for name in entry.names:
            if name in self._names:
                raise LuodiError(f"model name '{name}' is used twice in the model pool")
            self._names[name] = entry
        if entry.engine is not None:
            entry.state = ModelState.LOADED
            entry.loaded_at = time.monotonic()
            entry.loads += 1
        self._entries[entry.name] = entry

    # -- looking up -----------------------------------------------------------------

    @property
    def entries(self) -> list[PoolEntry]:
        """Every model, in configuration order."""
        return list(self._entries.values())

    @property
    def names(self) -> dict[str, PoolEntry]:
        """Every name and alias → its entry."""
        return dict(self._names)

    def get(self, name: str) -> PoolEntry:
        """The entry called (or aliased) ``name``; 404 naming the pool's models."""
        entry = self._names.get(name)
        if entry is None:
            raise NotFoundError(
                f"the model '{name}' is not in the model pool; models: {', '.join(self._entries)}",
                param="model",
                code="model_not_found",
            )
        return entry

    def adapter_names(self) -> dict[str, tuple[PoolEntry, str]]:
        """``model:adapter`` (for the name and each alias) → the entry and the adapter."""
        return {
            f"{name}:{adapter}": (entry, adapter)
            for entry in self._entries.values()
            for name in entry.names
            for adapter in entry.adapters
        }

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` when the names the pool serves change (an adapter added)."""
        self._listeners.append(listener)

    def held_bytes(self) -> int:
        """RAM the loading and loaded models hold, by their estimates."""
        return sum(e.memory.total_bytes for e in self._entries.values() if e.holds_memory)

    def describe(self) -> dict[str, object]:
        """The budget and every model's state, for ``/admin/models``."""
        return {
            "budget_bytes": self.budget.capacity_bytes,
            "held_bytes": self.held_bytes(),
            "models": [e.describe() for e in self._entries.values()],
        }

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Load every pinned model not loaded yet, then start unloading idle ones."""
        for entry in self._entries.values():
            if entry.pinned and entry.state is ModelState.UNLOADED:
                await self.load(entry.name)
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def stop(self) -> None:
        """Stop unloading on keep-alive and stop every engine (the server has drained)."""
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
        for entry in self._entries.values():
            if entry.task is not None:
                with contextlib.suppress(BaseException):
                    await entry.task
            if entry.engine is not None:
                await self._unload(entry)

    # -- using a model ----------------------------------------------------------------

    async def ensure_loaded(self, name: str) -> LocalEngine:
        """``name``'s engine, loading it first if needed (one load however many ask)."""
        entry = self.get(name)
        while True:
            if entry.state is ModelState.LOADED and entry.engine is not None:
                entry.last_used = time.monotonic()
                return entry.engine
            if entry.task is None:
                entry.task = asyncio.get_running_loop().create_task(self._load(entry))
                entry.task.add_done_callback(functools.partial(_clear_task, entry))
            # Shielded: one waiter hanging up must not cancel the load the others await.
            await asyncio.shield(entry.task)

    @contextlib.asynccontextmanager
    async def using(self, name: str) -> AsyncIterator[LocalEngine]:
        """Hold ``name`` loaded for one request: it is not unloaded until this exits."""
        engine = await self.ensure_loaded(name)
        entry = self.get(name)
        entry.in_flight += 1  # no await since ensure_loaded: it is still loaded
        try:
            yield engine
        finally:
            entry.in_flight -= 1
            entry.last_used = time.monotonic()
            if entry.in_flight == 0:
                await self._notify()

    async def load(self, name: str) -> PoolEntry:
        """Load ``name`` now (admin, pinned models); a no-op when it is loaded."""
        await self.ensure_loaded(name)
        return self.get(name)

    async def unload(self, name: str) -> PoolEntry:
        """Unload ``name`` now (admin); 503 while requests run on it."""
        entry = self.get(name)
        if entry.task is not None:
            with contextlib.suppress(LuodiError):
                await asyncio.shield(entry.task)
        if entry.in_flight:
            raise ServiceUnavailableError(
                f"model '{entry.name}' has {entry.in_flight} request(s) in flight;"
                " it is unloaded when they finish, try again then",
                retry_after=1.0,
                code="model_busy",
            )
        if entry.state is ModelState.LOADED:
            await self._unload(entry)
        return entry

    async def add_adapter(self, name: str, adapter: AdapterSettings) -> PoolEntry:
        """Load a LoRA adapter into ``name`` while it serves; it stays with the model.

        The model is loaded first if needed (a bad file is found now, not at its next
        load) and held while the adapter loads. 400 for a file llama.cpp refuses or a
        name taken.
        """
        entry = self.get(name)
        if adapter.name in entry.adapters:
            raise InvalidRequestError(
                f"model '{entry.name}' already has an adapter '{adapter.name}'", param="name"
            )
        adapter = adapter.model_copy(update={"path": _inside_adapter_dir(entry, adapter.path)})
        async with self.using(name) as engine:
            if not isinstance(engine, AdapterHost):
                raise InvalidRequestError(f"model '{entry.name}' takes no LoRA adapters")
            try:
                await engine.add_adapter(adapter)
            except ModelLoadError as exc:  # the caller's file, not the server, is wrong
                raise InvalidRequestError(exc.message, param="path") from exc
        entry.adapters[adapter.name] = adapter
        for listener in self._listeners:
            listener()
        return entry

    async def register(self, model: EmbeddedModelSettings) -> PoolEntry:
        """Add a model while serving (a new version, a fine-tuned file); unloaded until asked.

        Its file must lie in ``engine.pool.model_dir``; its header is read now (off the
        event loop), so a file that is not a GGUF is refused here, not at its first
        request. 400 for a name or alias already served.
        """
        if self._describe is None:
            raise InvalidRequestError("this server's model pool takes no new models")
        taken = sorted(n for n in (model.name, *model.aliases) if n in self._names)
        if taken:
            raise InvalidRequestError(
                f"the name {taken[0]!r} is already served by the model pool", param="name"
            )
        folder = next(iter(self._entries.values())).settings.pool.model_dir
        path = _inside(folder, model.path, "model", "model_dir", code="models_disabled")
        try:
            entry = await asyncio.to_thread(self._describe, model.model_copy(update={"path": path}))
        except (OSError, ValueError, LuodiError) as exc:
            reason = exc.message if isinstance(exc, LuodiError) else str(exc)
            raise InvalidRequestError(f"cannot read {path.name}: {reason}", param="path") from exc
        if any(n in self._names for n in entry.names):  # registered meanwhile
            raise InvalidRequestError(f"the name {model.name!r} is already served", param="name")
        self._add(entry)
        for listener in self._listeners:
            listener()
        return entry

    async def wait_for(self, name: str, state: ModelState) -> None:
        """Return once ``name`` is in ``state`` (tests and the admin API await this)."""
        entry = self.get(name)
        async with self._changed:
            await self._changed.wait_for(lambda: entry.state is state)

    # -- loading and unloading ----------------------------------------------------------

    async def _load(self, entry: PoolEntry) -> None:
        async with self._room:
            await self._make_room(entry)
            entry.state = ModelState.LOADING  # counted from here on
        await self._notify()
        started = time.monotonic()
        engine: LocalEngine | None = None
        try:
            engine = self._build(entry)
            await self._start(engine)
        except BaseException as exc:
            entry.state = ModelState.UNLOADED
            entry.last_error = exc.message if isinstance(exc, LuodiError) else str(exc)
            await self._notify()
            raise
        entry.engine = engine
        entry.state = ModelState.LOADED
        entry.loads += 1
        entry.last_error = None
        entry.loaded_at = entry.last_used = time.monotonic()
        log.info("loaded model %s in %.2fs", entry.name, entry.loaded_at - started)
        await self._notify()

    async def _make_room(self, entry: PoolEntry) -> None:
        """Evict idle on-demand models, least recently used first, until ``entry`` fits.

        Refuses before evicting anything when even evicting every candidate would not
        make room: a model that cannot load must not cost the others theirs.
        """
        need = entry.memory.total_bytes
        capacity = self.budget.capacity_bytes
        victims = sorted(
            (
                e
                for e in self._entries.values()
                if e is not entry and e.idle and not e.pinned and e.task is None
            ),
            key=lambda e: e.last_used,
        )
        movable = sum(e.memory.total_bytes for e in victims)
        if need + self.held_bytes() - movable > capacity:
            raise self._refusal(entry)
        for victim in victims:
            if need + self.held_bytes() <= capacity:
                break
            if not victim.idle:  # a request took it while an earlier eviction ran
                continue
            log.info("unloading model %s to make room for %s", victim.name, entry.name)
            await self._unload(victim)
        if need + self.held_bytes() > capacity:
            raise self._refusal(entry)

    def _refusal(self, entry: PoolEntry) -> InsufficientMemoryError:
        need = entry.memory.total_bytes
        capacity = self.budget.capacity_bytes
        held = [e for e in self._entries.values() if e.holds_memory and e is not entry]
        parts = []
        for e in held:
            why = (
                "pinned"
                if e.pinned
                else f"{e.in_flight} request(s) in flight"
                if e.in_flight
                else e.state.value
            )
            parts.append(f"{e.name} {format_bytes(e.memory.total_bytes)} ({why})")
        if need > capacity:
            reason = "it is larger than the whole budget"
        else:
            reason = (
                f"{format_bytes(capacity - self.held_bytes())} is free and nothing can be unloaded"
            )
        return InsufficientMemoryError(
            f"model '{entry.name}' needs {entry.memory.describe()}, but the memory budget is"
            f" {format_bytes(capacity)} and {reason}"
            + (f"; held by: {', '.join(parts)}" if parts else "")
            + "; lower its n_ctx, unload a model, or raise engine.pool.memory_budget_mb",
            param="model",
        )

    async def _unload(self, entry: PoolEntry) -> None:
        engine = entry.engine
        entry.state = ModelState.UNLOADING
        await self._notify()
        try:
            if engine is not None:
                await engine.stop()
        finally:
            entry.engine = None
            entry.loaded_at = None
            entry.state = ModelState.UNLOADED
            log.info("unloaded model %s", entry.name)
            await self._notify()

    async def _reap(self) -> None:
        """Unload on-demand models idle past their keep-alive."""
        while True:
            now = time.monotonic()
            waits = []
            for entry in list(self._entries.values()):
                expires = entry.expires_in(now)
                if expires is None or entry.task is not None:
                    continue
                if expires <= 0:
                    entry.task = asyncio.get_running_loop().create_task(self._unload(entry))
                    entry.task.add_done_callback(functools.partial(_clear_task, entry))
                else:
                    waits.append(expires)
            delay = max(_REAP_MIN_S, min([_REAP_MAX_S, *waits]))
            # A request finishing starts a keep-alive countdown: wake up for it.
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), delay)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


def _inside_adapter_dir(entry: PoolEntry, path: Path) -> Path:
    """``path`` (relative to ``engine.pool.adapter_dir``) if it lies inside that folder."""
    folder = entry.settings.pool.adapter_dir
    return _inside(folder, path, "adapter", "adapter_dir", code="adapters_disabled")


def _inside(folder: Path | None, path: Path | None, kind: str, knob: str, *, code: str) -> Path:
    """``path`` (relative to ``folder``) if it is a file inside it; the server reads no
    other file an API caller names."""
    if folder is None:
        raise PermissionDeniedError(
            f"adding {kind}s at run time is off: set engine.pool.{knob} to the folder they"
            " may be loaded from",
            code=code,
        )
    if path is None:
        raise InvalidRequestError(f"name the {kind} file in 'path'", param="path")
    root = folder.expanduser().resolve()
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise InvalidRequestError(
            f"{kind} path {str(path)!r} is outside engine.pool.{knob}", param="path"
        )
    if not resolved.is_file():
        raise InvalidRequestError(f"no {kind} file {str(path)!r} in {root}", param="path")
    return resolved


def _clear_task(entry: PoolEntry, _done: asyncio.Task[None]) -> None:
    entry.task = None
