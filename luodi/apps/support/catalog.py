"""The assistants of one folder: loaded at start, reloaded when a file changes.

A reload is all or nothing: one bad file keeps every assistant as it was and reports
the file and line, so an operator's typo never takes a working assistant away.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from luodi.apps.support.assistant import Assistant
from luodi.apps.support.loading import AssistantFileError, load_assistant

__all__ = ["AssistantCatalog"]

log = logging.getLogger(__name__)

_SUFFIXES = (".yaml", ".yml")


class AssistantCatalog:
    """Assistants by name, from the YAML files of ``folder`` (hot-reloaded)."""

    def __init__(self, folder: Path, *, check_every_s: float = 2.0) -> None:
        self.folder = folder
        self._check_every = check_every_s
        self._lock = threading.Lock()
        self._stamps: dict[Path, tuple[float, int]] = {}
        self._checked = 0.0
        self.assistants: dict[str, Assistant] = {}
        self.generation = 0
        """Bumped by every reload that changed something (classifiers rebuild on it)."""
        self.last_error: str | None = None
        self.reload()

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            raise AssistantFileError(f"{self.folder}:1: support.assistants_dir is not a folder")
        return sorted(p for p in self.folder.iterdir() if p.suffix in _SUFFIXES and p.is_file())

    def _scan(self) -> dict[Path, tuple[float, int]]:
        stamps = {}
        for path in self._files():
            stat = path.stat()
            stamps[path] = (stat.st_mtime, stat.st_size)
        return stamps

    def reload(self) -> list[str]:
        """Load every file now; returns the assistants' names.

        Raises:
            AssistantFileError: a file is bad, or two files name the same assistant;
                the assistants in force stay as they were.
        """
        with self._lock:
            stamps = self._scan()
            loaded: dict[str, Assistant] = {}
            origin: dict[str, Path] = {}
            try:
                for path in stamps:
                    assistant = load_assistant(path)
                    if assistant.name in loaded:
                        raise AssistantFileError(
                            f"{path}:1: name {assistant.name!r} is already used by "
                            f"{origin[assistant.name]}"
                        )
                    loaded[assistant.name] = assistant
                    origin[assistant.name] = path
            except AssistantFileError as exc:
                self.last_error = exc.message
                self._stamps = stamps  # reported once, not on every look
                raise
            self._stamps = stamps
            self._checked = time.monotonic()
            self.last_error = None
            if loaded != self.assistants:
                self.assistants = loaded
                self.generation += 1
            return sorted(loaded)

    def refresh(self) -> None:
        """Reload if a file changed since the last look (at most every ``check_every_s``)."""
        now = time.monotonic()
        if now - self._checked < self._check_every:
            return
        self._checked = now
        try:
            if self._scan() == self._stamps:
                return
            self.reload()
            log.info("support assistants reloaded: %s", ", ".join(self.assistants) or "none")
        except AssistantFileError as exc:
            log.warning("support assistants not reloaded: %s", exc.message)

    def get(self, name: str) -> Assistant | None:
        """The assistant called ``name`` (after a look for changed files)."""
        self.refresh()
        return self.assistants.get(name)
