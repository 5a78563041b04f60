"""The shared libraries of the llama-cpp-python build, for bindings it leaves out.

llama-cpp-python loads ``libllama`` and ``libggml-base`` from its own ``lib`` folder;
opening them again by that path returns the same handle, so functions it does not bind
(ggml-opt for fine-tuning, tensor accessors for graph callbacks) are bound from here.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import llama_cpp

__all__ = ["shared_library"]

_LIB_DIR = Path(llama_cpp.__file__).parent / "lib"


def shared_library(stem: str) -> ctypes.CDLL:
    """The build's own ``lib<stem>`` (``ggml-base``, ``llama``), already loaded."""
    for name in (f"lib{stem}.so", f"lib{stem}.dylib", f"{stem}.dll"):
        path = _LIB_DIR / name
        if path.exists():
            return ctypes.CDLL(str(path))
    return ctypes.CDLL(f"lib{stem}.so")
