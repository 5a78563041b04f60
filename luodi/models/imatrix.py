"""Importance matrices (``llama-imatrix`` output) for quantisation, GGUF or legacy ``.dat``.

An importance matrix holds, per weight matrix, the mean squared activation of each
input column over a calibration text; quantisation spends its precision where those
are large. Both of llama.cpp's file formats are read, and the values are normalised
the way its quantize tool does before they reach ``llama_model_quantize``:

- GGUF (``general.type = imatrix``): tensors ``NAME.in_sum2`` (sums, one row per
  expert) and ``NAME.counts`` (tokens seen, per expert); value = sum / count.
- legacy ``.dat``: ``int32 n``, then per entry ``int32 len, name, int32 ncall,
  int32 nval, float32[nval]``; value = stored / ncall.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np

from luodi.errors import ConfigError
from luodi.models.gguf_file import read_gguf_header

__all__ = ["ImportanceMatrix", "load_imatrix"]


@dataclass(frozen=True, slots=True)
class ImportanceMatrix:
    """Per-tensor importance values, ready to hand to llama.cpp."""

    path: Path
    entries: dict[str, np.ndarray]

    def as_llama_array(self) -> ctypes.Array[llama_cpp.llama_model_imatrix_data]:
        """A NULL-terminated ``llama_model_imatrix_data`` array over this object's buffers.

        The array points into ``entries`` and into name buffers it keeps on itself:
        keep it alive until llama.cpp has returned.
        """
        items = sorted(self.entries.items())
        array = (llama_cpp.llama_model_imatrix_data * (len(items) + 1))()
        names = [ctypes.create_string_buffer(name.encode()) for name, _ in items]
        for slot, name_buf, (_, values) in zip(array, names, items, strict=False):
            slot.name = ctypes.cast(name_buf, ctypes.c_char_p)
            slot.data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            slot.size = values.size
        array._luodi_keep = names  # type: ignore[attr-defined]
        return array


def load_imatrix(path: Path) -> ImportanceMatrix:
    """Read an importance matrix file; ConfigError in one line if it is not one."""
    if not path.is_file():
        raise ConfigError(f"importance matrix {path} not found")
    with path.open("rb") as fh:
        magic = fh.read(4)
    entries = _from_gguf(path) if magic == b"GGUF" else _from_legacy(path)
    if not entries:
        raise ConfigError(f"{path} holds no importance data")
    for name, values in entries.items():
        if not np.isfinite(values).all():
            raise ConfigError(f"{path}: importance data for {name} is not finite")
    return ImportanceMatrix(path, entries)


def _from_gguf(path: Path) -> dict[str, np.ndarray]:
    header = read_gguf_header(path)
    if header.metadata.get("general.type") != "imatrix":
        raise ConfigError(f"{path} is a GGUF file but not an importance matrix")
    by_name = {t.name: t for t in header.tensors}
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=header.data_start)
    entries: dict[str, np.ndarray] = {}
    for name, tensor in by_name.items():
        if not name.endswith(".in_sum2"):
            continue
        base = name.removesuffix(".in_sum2")
        counts_info = by_name.get(base + ".counts")
        if counts_info is None or tensor.type_name != "F32" or counts_info.type_name != "F32":
            raise ConfigError(f"{path}: {base} lacks F32 sums and counts")
        sums = np.frombuffer(data, np.float32, tensor.elements, tensor.offset)
        counts = np.frombuffer(data, np.float32, counts_info.elements, counts_info.offset)
        rows = sums.reshape(len(counts), -1)
        # A matrix no token reached gets ones: no preference, as llama.cpp does.
        safe = np.where(counts > 0, counts, 1.0)[:, None]
        entries[base] = np.where(counts[:, None] > 0, rows / safe, 1.0).astype(np.float32).ravel()
    return entries


def _from_legacy(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    entries: dict[str, np.ndarray] = {}
    try:
        (count,), at = struct.unpack_from("<i", raw), 4
        if not 0 < count < 1_000_000:
            raise ValueError(count)
        for _ in range(count):
            (length,) = struct.unpack_from("<i", raw, at)
            name = raw[at + 4 : at + 4 + length].decode()
            at += 4 + length
            ncall, nval = struct.unpack_from("<ii", raw, at)
            at += 8
            values = np.frombuffer(raw, np.float32, nval, at).copy()
            at += 4 * nval
            entries[name] = values / ncall if ncall > 0 else values
    except (struct.error, ValueError, UnicodeDecodeError):
        raise ConfigError(f"{path} is not an importance matrix (GGUF or legacy .dat)") from None
    return entries
