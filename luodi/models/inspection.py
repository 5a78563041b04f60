"""What a GGUF file holds: architecture, sizes, attention shape, quantisation mix, memory.

``luodi model inspect`` prints it; everything comes from the header, so it takes
milliseconds on any file and never loads the weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from luodi.models.gguf_file import GGUFHeader, read_gguf_header
from luodi.models.memory import ModelMemory, memory_of

__all__ = ["FILE_TYPES", "ModelInfo", "TypeShare", "inspect_model"]

# llama_ftype (llama.h) -> the name llama.cpp's quantize tool uses for it.
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}


@dataclass(frozen=True, slots=True)
class TypeShare:
    """How much of the model one tensor type holds."""

    type: str
    tensors: int
    parameters: int
    bytes: int


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A GGUF model at a glance; sizes in bytes."""

    path: str
    name: str
    architecture: str
    file_type: str
    file_size: int
    parameters: int
    layers: int
    embedding_length: int
    heads: int
    kv_heads: int
    gqa_ratio: float
    head_dim: int
    context_length: int
    sliding_window: int | None
    vocab_size: int | None
    quantization: tuple[TypeShare, ...]
    memory: ModelMemory

    def to_json(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict."""
        return asdict(self)


def _count(value: Any) -> int | None:
    # The reader keeps a long array (a vocabulary) as its length.
    if isinstance(value, list):
        return len(value)
    return int(value) if isinstance(value, int) else None


def _mix(header: GGUFHeader) -> tuple[TypeShare, ...]:
    by_type: dict[str, list[int]] = {}
    for tensor in header.tensors:
        row = by_type.setdefault(tensor.type_name, [0, 0, 0])
        row[0] += 1
        row[1] += tensor.elements
        row[2] += tensor.nbytes
    shares = (TypeShare(name, n, p, b) for name, (n, p, b) in by_type.items())
    return tuple(sorted(shares, key=lambda s: -s.bytes))


def describe(header: GGUFHeader, path: Path, *, kv_type: str = "q8_0") -> ModelInfo:
    """The ModelInfo of an already parsed header."""
    memory = memory_of(header, path.name, kv_type=kv_type)
    meta = header.metadata
    arch = memory.architecture
    ftype = meta.get("general.file_type")
    window = meta.get(f"{arch}.attention.sliding_window")
    return ModelInfo(
        path=str(path),
        name=str(meta.get("general.name", path.stem)),
        architecture=arch,
        file_type=FILE_TYPES.get(int(ftype), f"ftype{ftype}") if ftype is not None else "unknown",
        file_size=header.file_size,
        parameters=memory.parameters,
        layers=memory.layers,
        embedding_length=int(meta.get(f"{arch}.embedding_length", 0)),
        heads=memory.heads,
        kv_heads=memory.kv_heads,
        gqa_ratio=memory.heads / memory.kv_heads if memory.kv_heads else 0.0,
        head_dim=memory.head_dim,
        context_length=int(meta.get(f"{arch}.context_length", 0)),
        sliding_window=int(window) if window is not None else None,
        vocab_size=_count(meta.get("tokenizer.ggml.tokens")),
        quantization=_mix(header),
        memory=memory,
    )


def inspect_model(path: Path, *, kv_type: str = "q8_0") -> ModelInfo:
    """Read a GGUF file's header and describe the model; ConfigError if it is not one."""
    return describe(read_gguf_header(path), path, kv_type=kv_type)
