"""The embedded engine and its model pool, built here so that the API never names a class.

``create_app`` and the CLI ask for "the in-process engine of these settings" and get
a ``LocalEngine`` (``luodi.engine.base``): what the server needs of it (start, stop,
template metadata, an observer) is the protocol's; how it runs is this package's.
``build_pool`` adds every model of ``engine.models`` beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from luodi.config.engine import EngineSettings
from luodi.config.models import EmbeddedModelSettings
from luodi.engine.base import LocalEngine
from luodi.engine.llamacpp.default_model import DEFAULT_MODEL_NAME, resolve_model_path
from luodi.engine.llamacpp.engine import LlamaCppEngine, ModelOpener
from luodi.engine.llamacpp.model import quantization_name
from luodi.engine.observer import EngineObserver
from luodi.engine.pool.memory import MemoryBudget, estimate_memory
from luodi.engine.pool.pool import EngineStarter, ModelPool
from luodi.engine.pool.state import PoolEntry
from luodi.errors import ConfigError
from luodi.models.gguf_file import GGUFHeader, read_gguf_header

__all__ = ["ModelOpener", "build_embedded", "build_pool", "default_model_name"]


def build_embedded(settings: EngineSettings, *, opener: ModelOpener | None = None) -> LocalEngine:
    """The embedded llama.cpp engine of ``settings`` (not started)."""
    engine: LocalEngine = LlamaCppEngine(settings, opener=opener)
    return engine


def default_model_name(settings: EngineSettings) -> str:
    """The name the default model is served under (as the engine names it once loaded)."""
    if settings.model_name:
        return settings.model_name
    if settings.model is None:
        return DEFAULT_MODEL_NAME
    return Path(settings.model).name.removesuffix(".gguf").removesuffix(".enc")


def _header(settings: EngineSettings, opener: ModelOpener | None) -> GGUFHeader:
    source = resolve_model_path(settings.model, settings.cache_dir, check=opener is None)
    if opener is None:
        return read_gguf_header(source)
    with opener(source) as opened:  # an encrypted model is read through its key
        return read_gguf_header(opened)


def _entry(
    name: str,
    settings: EngineSettings,
    opener: ModelOpener | None,
    *,
    aliases: tuple[str, ...] = (),
    pinned: bool,
    keep_alive_s: float,
) -> PoolEntry:
    header = _header(settings, opener)
    meta = header.metadata
    trained = int(meta.get(f"{meta.get('general.architecture', '')}.context_length", 0))
    file_type = meta.get("general.file_type")
    return PoolEntry(
        name=name,
        settings=settings,
        memory=estimate_memory(header, name, settings),
        context_length=min(settings.max_model_len or trained or settings.n_ctx, settings.n_ctx),
        quantization=quantization_name(file_type if isinstance(file_type, int) else None),
        aliases=aliases,
        pinned=pinned,
        keep_alive_s=keep_alive_s,
    )


def build_pool(
    settings: EngineSettings,
    *,
    default: LocalEngine | None,
    start: EngineStarter,
    opener: ModelOpener | None = None,
    observer: Callable[[str], EngineObserver] | None = None,
) -> ModelPool:
    """The pool of the default model (pinned; ``default`` if already started) and ``models``.

    Reads each GGUF's header to size its memory: call it off the event loop. Raises
    ConfigError when a name is taken twice or the pinned models alone exceed the budget.
    """
    default_name = default.info.name if default is not None else default_model_name(settings)
    keep = settings.pool.keep_alive_s
    entries = [_entry(default_name, settings, opener, pinned=True, keep_alive_s=keep)]
    entries[0].engine = default

    def describe(model: EmbeddedModelSettings) -> PoolEntry:
        return _entry(
            model.name,
            settings.for_model(model),
            opener,
            aliases=tuple(model.aliases),
            pinned=model.pinned,
            keep_alive_s=keep if model.keep_alive_s is None else model.keep_alive_s,
        )

    for model in settings.models:
        if default_name in (model.name, *model.aliases):
            raise ConfigError(
                f"engine.models '{model.name}': the name '{default_name}' is the default model's"
            )
        entries.append(describe(model))
    budget = MemoryBudget.of(settings.pool.memory_budget_mb)
    pinned = sum(e.memory.total_bytes for e in entries if e.pinned)
    if pinned > budget.capacity_bytes:
        raise ConfigError(
            f"the pinned models need {pinned >> 20} MiB"
            f" ({', '.join(f'{e.name}: {e.memory.describe()}' for e in entries if e.pinned)}),"
            f" more than engine.pool.memory_budget_mb ({budget.capacity_bytes >> 20} MiB)"
        )

    def build(entry: PoolEntry) -> LocalEngine:
        # Adapters added at run time load again with the model.
        adapters = list(entry.adapters.values())
        engine = build_embedded(
            entry.settings.model_copy(update={"adapters": adapters}), opener=opener
        )
        if observer is not None:
            engine.observer = observer(entry.name)
        return engine

    return ModelPool(entries, budget, build=build, start=start, describe=describe)
