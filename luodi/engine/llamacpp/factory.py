"""The embedded engine, built here so that the API never names its class.

``create_app`` and the CLI ask for "the in-process engine of these settings" and get
a ``LocalEngine`` (``luodi.engine.base``): what the server needs of it (start, stop,
template metadata, an observer) is the protocol's; how it runs is this package's.
"""

from __future__ import annotations

from luodi.config.engine import EngineSettings
from luodi.engine.base import LocalEngine
from luodi.engine.llamacpp.engine import LlamaCppEngine, ModelOpener

__all__ = ["ModelOpener", "build_embedded"]


def build_embedded(settings: EngineSettings, *, opener: ModelOpener | None = None) -> LocalEngine:
    """The embedded llama.cpp engine of ``settings`` (not started)."""
    engine: LocalEngine = LlamaCppEngine(settings, opener=opener)
    return engine
