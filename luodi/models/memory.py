"""Memory a GGUF model needs: weight bytes, KV bytes per token, what GQA and quantisation save.

The one place luodi does this arithmetic: ``luodi model inspect``, the 3C cost report
(``luodi eval cost --gguf``) and its plan all read it from here. It needs the GGUF
header only. Weight bytes are the file's tensor-data region, exact to the alignment
padding; the parameter count is the sum of the tensors' element counts. KV bytes per
token are ``layers x KV heads x (key size + value size) x bytes per element`` of the
cache type the server runs with (luodi's embedded engine: Q8_0). For a model with
sliding-window layers (Gemma 3) it is the upper bound: llama.cpp keeps a full-length
cache for every layer when ``swa_full`` is on, as luodi runs it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from luodi.errors import ConfigError
from luodi.models.gguf_file import GGUFHeader, read_gguf_header

__all__ = ["KV_TYPE_BYTES", "WEIGHT_FORMAT_BYTES", "ModelMemory", "memory_of", "model_memory"]

# Bytes per element of a cache type (block bytes / block size for quantised ones).
KV_TYPE_BYTES: dict[str, float] = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
}
# Bytes per weight of reference formats, to say what a file saves against them.
WEIGHT_FORMAT_BYTES: dict[str, float] = {"f16": 2.0, "int8 (q8_0)": 34 / 32, "int4 (q4_0)": 18 / 32}


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

    def kv_bytes(self, tokens: int, kv_type: str | None = None) -> float:
        """KV-cache bytes for ``tokens`` cached tokens at a cache type (default: this one's)."""
        per_token = self.kv_per_token_as[kv_type] if kv_type else self.kv_bytes_per_token
        return per_token * tokens

    def sequences_that_fit(
        self, memory_bytes: float, tokens_per_sequence: int, kv_type: str | None = None
    ) -> int:
        """Concurrent sequences of this length whose KV fits beside the weights."""
        free = memory_bytes - self.weight_bytes
        if free <= 0 or tokens_per_sequence <= 0:
            return 0
        return int(free // self.kv_bytes(tokens_per_sequence, kv_type))

    def to_json(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict."""
        return asdict(self)


def _per_layer(value: Any) -> float:
    """A head count that may be one number or one per layer; the mean per layer."""
    if isinstance(value, list):
        return sum(value) / max(1, len(value))
    return float(value if value is not None else 0)


def memory_of(header: GGUFHeader, name: str, *, kv_type: str = "q8_0") -> ModelMemory:
    """Weight and KV-cache bytes from a parsed header, with the F16 / INT8 / INT4 comparisons."""
    if kv_type not in KV_TYPE_BYTES:
        raise ConfigError(f"unknown KV type {kv_type!r}; known: {sorted(KV_TYPE_BYTES)}")
    meta = header.metadata
    arch = str(meta.get("general.architecture", ""))
    try:
        layers = int(meta[f"{arch}.block_count"])
        heads = _per_layer(meta[f"{arch}.attention.head_count"])
        embedding = int(meta[f"{arch}.embedding_length"])
    except KeyError as exc:
        raise ConfigError(f"{name}: GGUF metadata lacks {exc.args[0]}") from None
    kv_heads = _per_layer(meta.get(f"{arch}.attention.head_count_kv", heads))
    key_dim = int(meta.get(f"{arch}.attention.key_length", embedding // max(1, int(heads))))
    value_dim = int(meta.get(f"{arch}.attention.value_length", key_dim))
    per_element = layers * kv_heads * (key_dim + value_dim)
    no_gqa = layers * heads * (key_dim + value_dim)
    weights = header.data_bytes
    params = header.parameters
    return ModelMemory(
        file=name,
        architecture=arch,
        parameters=params,
        weight_bytes=weights,
        bits_per_weight=8 * weights / params if params else 0.0,
        layers=layers,
        heads=int(heads),
        kv_heads=int(kv_heads),
        head_dim=key_dim,
        kv_type=kv_type,
        kv_bytes_per_token=per_element * KV_TYPE_BYTES[kv_type],
        kv_bytes_per_token_without_gqa=no_gqa * KV_TYPE_BYTES[kv_type],
        weights_as={n: int(params * b) for n, b in WEIGHT_FORMAT_BYTES.items()},
        kv_per_token_as={n: per_element * b for n, b in KV_TYPE_BYTES.items()},
    )


def model_memory(path: Path, *, kv_type: str = "q8_0") -> ModelMemory:
    """Weight and KV-cache bytes of a GGUF file, read from its header alone."""
    return memory_of(read_gguf_header(path), path.name, kv_type=kv_type)
