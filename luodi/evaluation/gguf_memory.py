"""Memory a GGUF model needs: weight bytes, KV bytes per token, what GQA and quantisation save.

Reads the GGUF header only (metadata and tensor table, never the weights), so it is
instant on a 70B file. Weight bytes are the file's tensor-data region, exact to the
alignment padding; the parameter count is the sum of the tensors' element counts.
KV bytes per token are ``2 (K and V) x layers x KV heads x head size x bytes per
element`` of the cache type the server runs with (luodi's embedded engine: Q8_0). For
a model with sliding-window layers (Gemma 3) it is the upper bound: llama.cpp keeps a
full-length cache for every layer when ``swa_full`` is on, as luodi runs it.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from luodi.errors import ConfigError

__all__ = ["KV_TYPE_BYTES", "ModelMemory", "model_memory", "read_gguf_metadata"]

# Bytes per element of a cache type (block size and block bytes for quantised ones).
KV_TYPE_BYTES: dict[str, float] = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
}
# Bytes per weight of reference formats, to say what a file saves against them.
WEIGHT_FORMAT_BYTES: dict[str, float] = {"f16": 2.0, "int8 (q8_0)": 34 / 32, "int4 (q4_0)": 18 / 32}

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


@dataclass(frozen=True, slots=True)
class GGUFHeader:
    """The metadata key/values, tensor element counts and where tensor data starts."""

    metadata: dict[str, Any]
    parameters: int
    data_start: int
    file_size: int


def _read(fh: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise ConfigError(f"{fh.name}: truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _string(fh: BinaryIO) -> str:
    n = _read(fh, "<Q")
    return fh.read(n).decode("utf-8", errors="replace")


def _value(fh: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        return _read(fh, _SCALARS[kind])
    if kind == _STRING:
        return _string(fh)
    if kind == _ARRAY:
        inner, count = _read(fh, "<I"), _read(fh, "<Q")
        if inner in _SCALARS and inner not in (7,):
            fmt = _SCALARS[inner]
            # Big arrays (the vocabulary's scores) are read in one go.
            raw = fh.read(struct.calcsize(fmt) * count)
            return list(struct.unpack("<" + fmt[1:] * count, raw)) if count < 4096 else count
        values = [_value(fh, inner) for _ in range(count)]
        return values if count < 4096 else count
    raise ConfigError(f"{fh.name}: unknown GGUF value type {kind}")


def read_gguf_metadata(path: Path) -> GGUFHeader:
    """The header of a GGUF file (v2/v3); arrays of 4096+ items are kept as their length."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ConfigError(f"{path}: not a GGUF file (an encrypted model? decrypt it first)")
        version = _read(fh, "<I")
        if version < 2:
            raise ConfigError(f"{path}: GGUF version {version} is too old")
        n_tensors, n_kv = _read(fh, "<Q"), _read(fh, "<Q")
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = _string(fh)
            metadata[key] = _value(fh, _read(fh, "<I"))
        parameters = 0
        for _ in range(n_tensors):
            _string(fh)
            dims = [_read(fh, "<Q") for _ in range(_read(fh, "<I"))]
            _read(fh, "<I")  # ggml type
            _read(fh, "<Q")  # offset
            count = 1
            for d in dims:
                count *= d
            parameters += count
        align = int(metadata.get("general.alignment", 32))
        start = fh.tell()
        start += (-start) % align
    return GGUFHeader(metadata, parameters, start, size)


@dataclass(frozen=True, slots=True)
class ModelMemory:
    """One model's memory figures; bytes unless the name says otherwise."""

    file: str
    architecture: str
    parameters: int
    weight_bytes: int
    bits_per_weight: float
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    kv_type: str
    kv_bytes_per_token: float
    kv_bytes_per_token_without_gqa: float
    weights_as: dict[str, int]
    kv_per_token_as: dict[str, float]

    def sequences_that_fit(self, memory_bytes: float, tokens_per_sequence: int) -> int:
        """Concurrent sequences of this length whose KV fits beside the weights."""
        free = memory_bytes - self.weight_bytes
        if free <= 0:
            return 0
        return int(free // (self.kv_bytes_per_token * tokens_per_sequence))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _per_layer(value: Any, layers: int) -> float:
    """A head count that may be one number or one per layer; the mean per layer."""
    if isinstance(value, list):
        return sum(value) / max(1, len(value))
    return float(value if value is not None else 0)


def model_memory(path: Path, *, kv_type: str = "q8_0") -> ModelMemory:
    """Weight and KV-cache bytes of a GGUF file, with the F16 / INT8 / INT4 comparisons."""
    if kv_type not in KV_TYPE_BYTES:
        raise ConfigError(f"unknown KV type {kv_type!r}; known: {sorted(KV_TYPE_BYTES)}")
    header = read_gguf_metadata(path)
    meta = header.metadata
    arch = str(meta.get("general.architecture", ""))
    try:
        layers = int(meta[f"{arch}.block_count"])
        heads = _per_layer(meta[f"{arch}.attention.head_count"], layers)
        embedding = int(meta[f"{arch}.embedding_length"])
    except KeyError as exc:
        raise ConfigError(f"{path}: GGUF metadata lacks {exc.args[0]}") from None
    kv_heads = _per_layer(meta.get(f"{arch}.attention.head_count_kv", heads), layers)
    key_dim = int(meta.get(f"{arch}.attention.key_length", embedding // max(1, int(heads))))
    value_dim = int(meta.get(f"{arch}.attention.value_length", key_dim))
    element = KV_TYPE_BYTES[kv_type]
    per_token = layers * kv_heads * (key_dim + value_dim) * element
    weights = header.file_size - header.data_start
    params = header.parameters
    return ModelMemory(
        file=path.name,
        architecture=arch,
        parameters=params,
        weight_bytes=weights,
        bits_per_weight=8 * weights / params if params else 0.0,
        layers=layers,
        heads=int(heads),
        kv_heads=int(kv_heads),
        head_dim=key_dim,
        kv_type=kv_type,
        kv_bytes_per_token=per_token,
        kv_bytes_per_token_without_gqa=layers * heads * (key_dim + value_dim) * element,
        weights_as={name: int(params * b) for name, b in WEIGHT_FORMAT_BYTES.items()},
        kv_per_token_as={
            name: layers * kv_heads * (key_dim + value_dim) * b for name, b in KV_TYPE_BYTES.items()
        },
    )
