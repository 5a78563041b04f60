"""The header of a GGUF file: metadata, the tensor table, where tensor data starts.

Reads only the header (never the weights), so it is instant on a 70B file. Every
tensor's byte size comes from the gap to the next tensor's offset, so it is exact
to the alignment padding whatever the type, including types newer than this table.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from luodi.errors import ConfigError

__all__ = ["GGML_TYPES", "GGUFHeader", "TensorInfo", "ggml_type_name", "read_gguf_header"]

# ggml_type id -> name (ggml.h); ids 4, 5 and 31-33, 36-38 were removed from ggml.
GGML_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    6: "Q5_0",
    7: "Q5_1",
    8: "Q8_0",
    9: "Q8_1",
    10: "Q2_K",
    11: "Q3_K",
    12: "Q4_K",
    13: "Q5_K",
    14: "Q6_K",
    15: "Q8_K",
    16: "IQ2_XXS",
    17: "IQ2_XS",
    18: "IQ3_XXS",
    19: "IQ1_S",
    20: "IQ4_NL",
    21: "IQ3_S",
    22: "IQ2_S",
    23: "IQ4_XS",
    24: "I8",
    25: "I16",
    26: "I32",
    27: "I64",
    28: "F64",
    29: "IQ1_M",
    30: "BF16",
    34: "TQ1_0",
    35: "TQ2_0",
    39: "MXFP4",
    40: "NVFP4",
    41: "Q1_0",
    42: "Q2_0",
}

_SCALARS: dict[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
# Arrays this long (a vocabulary, its scores and merges) are kept as their length.
_BIG_ARRAY = 4096


def ggml_type_name(type_id: int) -> str:
    """The ggml name of a tensor type id, or ``type<id>`` for one this table lacks."""
    return GGML_TYPES.get(type_id, f"type{type_id}")


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One tensor of the table: name, shape (ggml order), type, and where its data lies."""

    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int
    nbytes: int

    @property
    def type_name(self) -> str:
        """The tensor's ggml type name (F16, Q4_K, ...)."""
        return ggml_type_name(self.type_id)

    @property
    def elements(self) -> int:
        """How many numbers the tensor holds."""
        count = 1
        for dim in self.shape:
            count *= dim
        return count


@dataclass(frozen=True, slots=True)
class GGUFHeader:
    """The metadata key/values, the tensor table, and where tensor data starts."""

    version: int
    metadata: dict[str, Any]
    tensors: tuple[TensorInfo, ...]
    data_start: int
    file_size: int

    @property
    def parameters(self) -> int:
        """The sum of the tensors' element counts."""
        return sum(t.elements for t in self.tensors)

    @property
    def data_bytes(self) -> int:
        """Bytes of the tensor-data region: the weights as they sit in memory."""
        return self.file_size - self.data_start


def _read(fh: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise ConfigError(f"{fh.name}: truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _string(fh: BinaryIO) -> str:
    n = _read(fh, "<Q")
    data = fh.read(n)
    if len(data) != n:
        raise ConfigError(f"{fh.name}: truncated GGUF header")
    return data.decode("utf-8", errors="replace")


def _value(fh: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        return _read(fh, _SCALARS[kind])
    if kind == _STRING:
        return _string(fh)
    if kind == _ARRAY:
        inner, count = _read(fh, "<I"), _read(fh, "<Q")
        if inner in _SCALARS and inner != 7:
            fmt = _SCALARS[inner]
            size = struct.calcsize(fmt) * count
            if count >= _BIG_ARRAY:
                fh.seek(size, 1)
                return count
            raw = fh.read(size)
            if len(raw) != size:
                raise ConfigError(f"{fh.name}: truncated GGUF header")
            return list(struct.unpack("<" + fmt[1:] * count, raw))
        values = [_value(fh, inner) for _ in range(count)]
        return values if count < _BIG_ARRAY else count
    raise ConfigError(f"{fh.name}: unknown GGUF value type {kind} (a corrupt file?)")


def read_gguf_header(path: Path) -> GGUFHeader:
    """Parse the header of a GGUF file (v2/v3); ConfigError names what is wrong."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a GGUF file")
    with path.open("rb") as fh:
        magic = fh.read(4)
        if magic != b"GGUF":
            raise ConfigError(
                f"{path}: not a GGUF file (magic {magic!r}; an encrypted model? decrypt it first)"
            )
        version = _read(fh, "<I")
        if version < 2:
            raise ConfigError(f"{path}: GGUF version {version} is too old")
        n_tensors, n_kv = _read(fh, "<Q"), _read(fh, "<Q")
        if n_tensors > 1_000_000 or n_kv > 1_000_000:
            raise ConfigError(f"{path}: implausible GGUF header (a corrupt file?)")
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = _string(fh)
            metadata[key] = _value(fh, _read(fh, "<I"))
        raw: list[tuple[str, tuple[int, ...], int, int]] = []
        for _ in range(n_tensors):
            name = _string(fh)
            shape = tuple(_read(fh, "<Q") for _ in range(_read(fh, "<I")))
            raw.append((name, shape, _read(fh, "<I"), _read(fh, "<Q")))
        align = int(metadata.get("general.alignment", 32))
        start = fh.tell()
        start += (-start) % align
    data_size = size - start
    ends = sorted({offset for *_, offset in raw} | {data_size})
    following = dict(itertools.pairwise(ends))
    tensors = tuple(
        TensorInfo(name, shape, type_id, offset, following.get(offset, data_size) - offset)
        for name, shape, type_id, offset in raw
    )
    if any(t.offset > data_size for t in tensors):
        raise ConfigError(f"{path}: tensor data runs past the end of the file (truncated?)")
    return GGUFHeader(version, metadata, tensors, start, size)
