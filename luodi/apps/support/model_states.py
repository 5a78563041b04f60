"""The assistants' language models, opened again to read their hidden states.

The intent classifier may learn from an assistant's embedded model (``classifier.py``);
this keeps one ``HiddenStates`` per model file, opened on first use and closed with the
service, and says no for models it must not read: upstream ones (no file here), unloaded
pooled ones, and files over ``support.model_features_max_gb``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from luodi.config.support import SupportSettings
from luodi.engine.base import Engine, FileBackedEngine
from luodi.engine.llamacpp.hidden_states import HiddenStates
from luodi.errors import LuodiError

__all__ = ["ModelStates"]

log = logging.getLogger(__name__)


class ModelStates:
    """Hidden-state readers by model file, for the classifier's model features."""

    def __init__(self, settings: SupportSettings) -> None:
        self._settings = settings
        self._open: dict[Path, HiddenStates | None] = {}
        self._lock = threading.Lock()

    def for_engine(self, engine: Engine | None) -> HiddenStates | None:
        """A reader of ``engine``'s model, or None where its states are not to be read."""
        if not isinstance(engine, FileBackedEngine) or (path := engine.weights_file) is None:
            return None
        return self.for_file(path, engine.info.size_bytes or 0)

    def for_file(self, path: Path, size_bytes: int = 0) -> HiddenStates | None:
        """A reader of the GGUF at ``path`` (None if it is too large or cannot be read)."""
        if self._settings.model_features == "off":
            return None
        limit = self._settings.model_features_max_gb * 1e9
        if size_bytes > limit:
            log.info(
                "%s is %.1f GB, over support.model_features_max_gb=%.1f: intents are learnt"
                " without its hidden states",
                path.name,
                size_bytes / 1e9,
                self._settings.model_features_max_gb,
            )
            return None
        with self._lock:
            if path not in self._open:
                self._open[path] = self._load(path)
            return self._open[path]

    def _load(self, path: Path) -> HiddenStates | None:
        try:
            return HiddenStates(path, n_threads=self._settings.model_features_threads)
        except (LuodiError, OSError) as exc:
            log.warning("cannot read hidden states of %s, intents go without: %s", path, exc)
            return None

    def close(self) -> None:
        """Free every model opened here."""
        with self._lock:
            for states in self._open.values():
                if states is not None:
                    states.close()
            self._open.clear()
