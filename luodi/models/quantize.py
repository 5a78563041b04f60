"""Quantise a GGUF model through llama.cpp's ``llama_model_quantize``.

``plan_quantize`` checks everything that can be checked before the work starts and
refuses in one line (unknown type, quantised source without ``allow_requantize``,
destination present, an adapter instead of a model, a type that needs an importance
matrix); ``run_quantize`` runs llama.cpp in a worker thread, writing to
``DST.partial`` and renaming it on success, and reports the bytes written so far:
``llama_model_quantize_params`` has no progress callback, and llama.cpp writes the
output tensor by tensor, so the file's growth against the expected size is the
progress.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import llama_cpp

from luodi.errors import ConfigError, ModelLoadError
from luodi.models._llama_log import captured_llama_log
from luodi.models.gguf_file import GGUFHeader, read_gguf_header
from luodi.models.imatrix import ImportanceMatrix, load_imatrix
from luodi.models.inspection import FILE_TYPES

__all__ = [
    "QUANT_TYPES",
    "QuantizePlan",
    "QuantizeResult",
    "plan_quantize",
    "run_quantize",
    "source_type",
]

# Target name -> (llama_ftype, approximate bits per weight of the result, for progress).
QUANT_TYPES: dict[str, tuple[int, float]] = {
    "F32": (0, 32.0),
    "F16": (1, 16.0),
    "BF16": (32, 16.0),
    "Q8_0": (7, 8.5),
    "Q6_K": (18, 6.56),
    "Q5_K_M": (17, 5.7),
    "Q5_K_S": (16, 5.5),
    "Q5_1": (9, 6.0),
    "Q5_0": (8, 5.5),
    "Q4_K_M": (15, 4.9),
    "Q4_K_S": (14, 4.6),
    "Q4_1": (3, 5.0),
    "Q4_0": (2, 4.5),
    "IQ4_NL": (25, 4.5),
    "IQ4_XS": (30, 4.25),
    "Q3_K_L": (13, 4.3),
    "Q3_K_M": (12, 3.9),
    "Q3_K_S": (11, 3.5),
    "IQ3_M": (27, 3.7),
    "IQ3_S": (26, 3.44),
    "IQ3_XS": (22, 3.3),
    "IQ3_XXS": (23, 3.06),
    "Q2_K": (10, 3.35),
    "Q2_K_S": (21, 3.0),
    "IQ2_M": (29, 2.7),
    "IQ2_S": (28, 2.5),
    "IQ2_XS": (20, 2.31),
    "IQ2_XXS": (19, 2.06),
    "IQ1_M": (31, 1.75),
    "IQ1_S": (24, 1.56),
}
# llama.cpp refuses these without an importance matrix: the result would be garbage.
_NEED_IMATRIX = frozenset({"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "Q2_K_S"})
_FLOAT_TYPES = frozenset({"F32", "F16", "BF16"})


def source_type(header: GGUFHeader) -> str:
    """The source's weight type: its ``general.file_type`` name, else its main matrix type."""
    ftype = header.metadata.get("general.file_type")
    if ftype is not None and int(ftype) in FILE_TYPES:
        return FILE_TYPES[int(ftype)]
    matrices = [t for t in header.tensors if len(t.shape) >= 2]
    if not matrices:
        return "unknown"
    return max(matrices, key=lambda t: t.nbytes).type_name


def _quantized_matrices(header: GGUFHeader) -> set[str]:
    # 1-D tensors (norms) stay F32 in every file; only matrices say what the file is.
    return {t.type_name for t in header.tensors if len(t.shape) >= 2} - _FLOAT_TYPES


@dataclass(frozen=True, slots=True)
class QuantizePlan:
    """A checked quantisation: what goes in, what comes out, and with what settings."""

    src: Path
    dst: Path
    type: str
    source_type: str
    parameters: int
    expected_bytes: int
    threads: int
    allow_requantize: bool
    imatrix: ImportanceMatrix | None = None
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class QuantizeResult:
    """What a finished quantisation wrote."""

    dst: Path
    type: str
    source_bytes: int
    output_bytes: int
    seconds: float


def plan_quantize(
    src: Path,
    dst: Path,
    type_name: str,
    *,
    imatrix: Path | None = None,
    allow_requantize: bool = False,
    threads: int = 0,
    force: bool = False,
) -> QuantizePlan:
    """Check a quantisation before running it; ConfigError in one line if it cannot be done."""
    wanted = type_name.upper()
    if wanted not in QUANT_TYPES:
        raise ConfigError(
            f"unknown quantization type {type_name!r}; known: {', '.join(QUANT_TYPES)}"
        )
    header = read_gguf_header(src)
    kind = str(header.metadata.get("general.type", "model"))
    if kind != "model":
        raise ConfigError(f"{src} is a GGUF {kind}, not a model; only models can be quantized")
    if dst.resolve() == src.resolve():
        raise ConfigError("the destination is the source; write the result to a new file")
    if dst.exists() and not force:
        raise ConfigError(f"{dst} exists; pass --force to overwrite it")
    if not dst.parent.is_dir():
        raise ConfigError(f"{dst.parent} is not a directory")
    current = source_type(header)
    quantized = _quantized_matrices(header)
    if quantized and not allow_requantize:
        raise ConfigError(
            f"{src.name} is already quantized ({current});"
            " requantizing compounds the error: pass --allow-requantize to do it anyway"
        )
    if current == wanted:
        raise ConfigError(f"{src.name} is already {wanted}; nothing to do")
    matrix = load_imatrix(imatrix) if imatrix is not None else None
    if wanted in _NEED_IMATRIX and matrix is None:
        raise ConfigError(f"{wanted} needs an importance matrix: pass --imatrix FILE")
    warnings: list[str] = []
    if quantized:
        warnings.append(
            f"requantizing from {current}: the result keeps {current}'s error"
            " and adds its own; quantize from an F16/BF16/F32 source where you have one"
        )
    params = header.parameters
    expected = int(params * QUANT_TYPES[wanted][1] / 8)
    free = _free_bytes(dst.parent)
    if free is not None and free < expected:
        raise ConfigError(
            f"{dst.parent} has {free / 2**20:.0f} MiB free; the result needs about"
            f" {expected / 2**20:.0f} MiB"
        )
    return QuantizePlan(
        src=src,
        dst=dst,
        type=wanted,
        source_type=current,
        parameters=params,
        expected_bytes=expected,
        threads=max(0, threads),
        allow_requantize=allow_requantize,
        imatrix=matrix,
        warnings=tuple(warnings),
    )


def _free_bytes(folder: Path) -> int | None:
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def _params(
    plan: QuantizePlan, imatrix: ctypes.Array[llama_cpp.llama_model_imatrix_data] | None
) -> llama_cpp.llama_model_quantize_params:
    params = cast(
        llama_cpp.llama_model_quantize_params, llama_cpp.llama_model_quantize_default_params()
    )
    params.nthread = plan.threads
    params.ftype = QUANT_TYPES[plan.type][0]
    params.allow_requantize = plan.allow_requantize
    if imatrix is not None:
        params.imatrix = ctypes.cast(imatrix, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    return params


def run_quantize(
    plan: QuantizePlan,
    on_progress: Callable[[int, float], None] | None = None,
    *,
    poll_seconds: float = 0.2,
) -> QuantizeResult:
    """Run a planned quantisation; ``on_progress(bytes_written, seconds)`` while it runs.

    llama.cpp runs in a worker thread (ctypes drops the GIL), the caller's thread polls
    the growing output. A failure raises ModelLoadError with llama.cpp's own reason.
    """
    partial = plan.dst.with_name(plan.dst.name + ".partial")
    partial.unlink(missing_ok=True)
    # Held here until llama.cpp returns: params only points into it.
    imatrix = plan.imatrix.as_llama_array() if plan.imatrix is not None else None
    params = _params(plan, imatrix)
    outcome: list[int] = []
    started = time.perf_counter()

    def work() -> None:
        outcome.append(
            llama_cpp.llama_model_quantize(
                str(plan.src).encode(), str(partial).encode(), ctypes.byref(params)
            )
        )

    with captured_llama_log() as llama_log:
        worker = threading.Thread(target=work, name="luodi-quantize", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(poll_seconds)
            if on_progress is not None:
                on_progress(_size(partial), time.perf_counter() - started)
    seconds = time.perf_counter() - started
    if not outcome or outcome[0] != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        reason = llama_log.reason("llama.cpp could not quantize it")
        raise ModelLoadError(f"quantizing {plan.src.name} to {plan.type} failed: {reason}")
    os.replace(partial, plan.dst)
    size = plan.dst.stat().st_size
    if on_progress is not None:
        on_progress(size, seconds)
    return QuantizeResult(plan.dst, plan.type, plan.src.stat().st_size, size, seconds)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
