"""How much RAM a model takes once loaded, and the budget every loaded model shares.

The estimate is computed from the GGUF header before loading, with the arithmetic of
``luodi.models.memory`` (what ``luodi model inspect`` prints): the weights are the
file's tensor data (mmapped and read once, so resident); the KV cache holds ``n_ctx``
cells in the engine's cache type (Q8_0 when ``batch_invariant``, else F16; with
``swa_full`` every layer keeps full length); the logits buffer holds one vocabulary
row per sequence. llama.cpp's compute buffers (tens of MiB) are not counted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from luodi.config.engine import EngineSettings
from luodi.models.gguf_file import GGUFHeader
from luodi.models.memory import memory_of

__all__ = [
    "MemoryBudget",
    "MemoryEstimate",
    "estimate_memory",
    "format_bytes",
    "physical_memory",
    "vocabulary_size",
]


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """One model's RAM once loaded, in bytes."""

    weights_bytes: int
    kv_bytes: int
    buffers_bytes: int
    n_ctx: int
    kv_type: str

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.buffers_bytes

    def describe(self) -> str:
        """``1.2 GiB (weights 800 MiB + KV 380 MiB for 16384 cells + buffers 32 MiB)``."""
        return (
            f"{format_bytes(self.total_bytes)} (weights {format_bytes(self.weights_bytes)}"
            f" + {self.kv_type} KV {format_bytes(self.kv_bytes)} for {self.n_ctx} cells"
            f" + buffers {format_bytes(self.buffers_bytes)})"
        )

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "total_bytes": self.total_bytes}


def vocabulary_size(header: GGUFHeader) -> int:
    """Tokens in the model's vocabulary (the header keeps a long array as its length)."""
    tokens = header.metadata.get("tokenizer.ggml.tokens", 0)
    return tokens if isinstance(tokens, int) else len(tokens)


def estimate_memory(header: GGUFHeader, name: str, settings: EngineSettings) -> MemoryEstimate:
    """The RAM the model of ``header`` takes under ``settings`` (see the module docstring)."""
    kv_type = "q8_0" if settings.batch_invariant else "f16"
    memory = memory_of(header, name, kv_type=kv_type)
    cached = settings.prefix_cache_slots if settings.prefix_cache else 0
    rows = settings.max_batch_size + cached  # llama.cpp reserves one logits row per sequence
    return MemoryEstimate(
        weights_bytes=memory.weight_bytes,
        kv_bytes=int(memory.kv_bytes(settings.n_ctx)),
        buffers_bytes=rows * vocabulary_size(header) * 4,
        n_ctx=settings.n_ctx,
        kv_type=kv_type,
    )


def physical_memory() -> int:
    """This machine's RAM in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def format_bytes(n: float) -> str:
    """``512 MiB``, ``1.5 GiB``."""
    if abs(n) >= 1 << 30:
        return f"{n / (1 << 30):.2f} GiB"
    return f"{n / (1 << 20):.0f} MiB"


@dataclass(frozen=True, slots=True)
class MemoryBudget:
    """The RAM every loaded embedded model shares."""

    capacity_bytes: int

    @classmethod
    def of(cls, memory_budget_mb: float | None) -> MemoryBudget:
        """The configured budget, or 90% of physical memory when none is set."""
        if memory_budget_mb is None:
            return cls(int(physical_memory() * 0.9))
        return cls(int(memory_budget_mb * (1 << 20)))

    def free_bytes(self, held: Iterable[MemoryEstimate]) -> int:
        return self.capacity_bytes - sum(m.total_bytes for m in held)
