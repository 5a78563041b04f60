"""Which extra weight-buffer types ggml's CPU backend offers, and which luodi lets it use.

ggml can keep weights in "extra" buffers that repack them for faster kernels:
``CPU_REPACK`` (interleaved K-quant blocks for AVX2/NEON) and, in builds compiled on a
CPU with AMX, ``AMX`` (Intel tile instructions). llama.cpp takes them all or none.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import threading
from collections.abc import Iterator

import llama_cpp
import llama_cpp._ggml as ggml_lib

__all__ = ["cpu_extra_buffer_types", "extra_buffers_usable", "high_level_model_params"]

log = logging.getLogger(__name__)

_DEVICE_TYPE_CPU = 0
_patch_lock = threading.Lock()


@functools.cache
def cpu_extra_buffer_types() -> tuple[str, ...]:
    """Names of the CPU backend's extra buffer types in this llama.cpp build."""
    base = ctypes.CDLL(str(ggml_lib.libggml_base_path / "libggml-base.so"))
    lib = ggml_lib.libggml
    lib.ggml_backend_dev_by_type.restype = ctypes.c_void_p
    lib.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
    base.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
    base.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
    base.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
    base.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    base.ggml_backend_buft_name.restype = ctypes.c_char_p
    base.ggml_backend_buft_name.argtypes = [ctypes.c_void_p]
    llama_cpp.llama_backend_init()
    dev = lib.ggml_backend_dev_by_type(_DEVICE_TYPE_CPU)
    if not dev:
        return ()
    reg = base.ggml_backend_dev_backend_reg(dev)
    address = base.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_dev_get_extra_bufts")
    if not address:
        return ()
    get_bufts = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)(address)
    bufts = get_bufts(dev)
    names: list[str] = []
    i = 0
    while bufts and bufts[i]:
        names.append(base.ggml_backend_buft_name(bufts[i]).decode())
        i += 1
    return tuple(names)


def extra_buffers_usable(*, batch_invariant: bool) -> bool:
    """Whether to let llama.cpp place weights in extra buffers.

    Never for a batch-invariant engine: repacked weights run other kernels for 1-3 rows
    than for 4+, so a sequence's logits would depend on its batch. Not on a build with
    the AMX buffer either: in the pinned build its tile kernels fault with SIGILL on the
    first prompt's matmul on this project's AMX-capable Xeon VMs, killing the process, and
    llama.cpp cannot keep CPU_REPACK while dropping AMX.
    """
    if batch_invariant:
        return False
    if "AMX" in cpu_extra_buffer_types():
        log.info("llama.cpp's AMX weight buffers are disabled: its tile kernels fault here")
        return False
    return True


@contextlib.contextmanager
def high_level_model_params(*, use_extra_bufts: bool) -> Iterator[None]:
    """Make ``llama_cpp.Llama(...)`` built inside this block load with this choice.

    The high-level class takes its model parameters from llama.cpp's defaults and has
    no argument for extra buffers, so the defaults are wrapped while it is built.
    """
    import llama_cpp.llama_cpp as low_level

    if use_extra_bufts:
        yield
        return
    with _patch_lock:
        original = low_level.llama_model_default_params

        def without_extra() -> llama_cpp.llama_model_params:
            params: llama_cpp.llama_model_params = original()
            params.use_extra_bufts = False
            return params

        low_level.llama_model_default_params = without_extra
        try:
            yield
        finally:
            low_level.llama_model_default_params = original
