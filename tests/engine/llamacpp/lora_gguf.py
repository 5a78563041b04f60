"""A random-weight GGUF LoRA adapter for a base model, written with the ``gguf`` package.

Shaped as llama.cpp's ``llama_adapter_lora_init`` expects: ``general.type = adapter``,
``adapter.type = lora``, ``adapter.lora.alpha``, the base model's architecture, and for
each adapted weight ``W`` (ggml shape ``[in, out]``) a pair ``W.lora_a`` of shape
``[in, rank]`` and ``W.lora_b`` of shape ``[rank, out]`` (numpy shapes reversed). The
delta ``B @ A * alpha / rank`` is large enough to move the logits measurably.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from luodi.models.gguf_file import read_gguf_header

__all__ = ["write_random_lora"]


def write_random_lora(
    base: Path,
    out: Path,
    *,
    rank: int = 8,
    alpha: float = 16.0,
    seed: int = 0,
    targets: tuple[str, ...] = ("attn_q", "attn_v", "ffn_up"),
    std: float = 0.02,
) -> Path:
    """Write an adapter for every ``blk.N.<target>.weight`` of ``base``; returns ``out``."""
    header = read_gguf_header(base)
    arch = str(header.metadata["general.architecture"])
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(out, arch=arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    count = 0
    for tensor in header.tensors:
        parts = tensor.name.split(".")
        if len(parts) != 4 or parts[0] != "blk" or parts[2] not in targets:
            continue
        n_in, n_out = (int(d) for d in tensor.shape)
        a = rng.normal(0.0, 1.0 / np.sqrt(n_in), size=(rank, n_in)).astype(np.float32)
        b = rng.normal(0.0, std * np.sqrt(rank), size=(n_out, rank)).astype(np.float32)
        writer.add_tensor(f"{tensor.name}.lora_a", a)
        writer.add_tensor(f"{tensor.name}.lora_b", b)
        count += 1
    if count == 0:
        raise ValueError(f"{base}: no tensor matches {targets}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
