"""llama.cpp's log, caught while a model operation runs, so a failure can say why in one line.

llama.cpp reports a failed quantisation or load as a return code and an ERROR log
line; luodi turns that line into the message of the exception it raises. The log
callback is process-wide, so the previous one is put back afterwards.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import llama_cpp

__all__ = ["LlamaLog", "captured_llama_log"]

log = logging.getLogger("luodi.models.llama_cpp")

_ERROR, _CONT = 4, 5


class LlamaLog:
    """The ERROR lines llama.cpp logged while the capture was on."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._last_level = 0

    def _on_line(self, level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        message = text.decode("utf-8", errors="replace")
        if level == _CONT:
            level = self._last_level
            if level == _ERROR and self.errors:
                self.errors[-1] += message
        elif level == _ERROR:
            self.errors.append(message)
        self._last_level = level
        if message.strip():
            log.debug("llama.cpp[%d]: %s", level, message.rstrip())

    def reason(self, default: str) -> str:
        """The most telling error line, without llama.cpp's ``function: `` prefixes."""
        lines = [line.strip() for e in self.errors for line in e.splitlines()]
        lines = [line for line in lines if line and not set(line) <= {"=", "-"}]
        if not lines:
            return default
        failed = [line for line in lines if "failed to" in line] or lines
        text = failed[-1]
        for prefix in ("llama_model_quantize: ", "failed to quantize: "):
            text = text.replace(prefix, "")
        return text.rstrip(".")


@contextmanager
def captured_llama_log() -> Iterator[LlamaLog]:
    """Route llama.cpp's log to a LlamaLog for the duration, then restore the old callback."""
    captured = LlamaLog()
    callback = llama_cpp.llama_log_callback(captured._on_line)
    old_callback = llama_cpp.llama_log_callback()
    old_data = ctypes.c_void_p()
    getter = getattr(llama_cpp, "llama_log_get", None)
    if getter is not None:
        getter(ctypes.byref(old_callback), ctypes.byref(old_data))
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    try:
        yield captured
    finally:
        if old_callback:
            llama_cpp.llama_log_set(old_callback, old_data)
        else:
            # llama.cpp's default writes to stderr; a silent one is the better default here.
            llama_cpp.llama_log_set(_SILENT, ctypes.c_void_p(0))


def _silent(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    if level == _ERROR:
        log.debug("llama.cpp: %s", text.decode("utf-8", errors="replace").rstrip())


_SILENT = llama_cpp.llama_log_callback(_silent)
