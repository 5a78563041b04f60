"""A tiny random-weight llama-architecture GGUF, written with the ``gguf`` package.

Small enough to write, load, quantize and even train in seconds; shaped like a real
model where it matters: grouped-query attention (8 query heads share 2 KV heads),
SwiGLU feed-forward, an SPM vocabulary with byte fallback so llama.cpp tokenizes any
text, and row sizes that K-quants accept (multiples of 256).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

__all__ = ["TinyShape", "write_tiny_llama"]


@dataclass(frozen=True, slots=True)
class TinyShape:
    """The tiny model's dimensions."""

    layers: int = 2
    embedding: int = 256
    heads: int = 8
    kv_heads: int = 2
    feed_forward: int = 512
    context: int = 512

    @property
    def head_dim(self) -> int:
        """Size of one attention head."""
        return self.embedding // self.heads


_WORDS = ["▁the", "▁a", "▁of", "▁and", "▁to", "▁model", "▁luodi", "▁is", "▁in", "▁data"]
_LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]


def _vocab() -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256
    pieces = list(dict.fromkeys(_WORDS + ["▁" + c for c in _LETTERS] + _LETTERS + ["▁"]))
    tokens += pieces
    types += [gguf.TokenType.NORMAL] * len(pieces)
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))]
    return tokens, scores, [int(t) for t in types]


def write_tiny_llama(
    path: Path,
    *,
    dtype: str = "F16",
    shape: TinyShape | None = None,
    seed: int = 0,
    architecture: str = "llama",
) -> Path:
    """Write the tiny model with its matrices in ``dtype`` (F16 or F32; norms stay F32).

    ``architecture="qwen3"`` adds Qwen 3's per-head RMSNorm on queries and keys.
    """
    s = shape or TinyShape()
    rng = np.random.default_rng(seed)
    tokens, scores, types = _vocab()
    matrix_type = {"F16": np.float16, "F32": np.float32}[dtype]
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name(f"tiny-{architecture}")
    writer.add_file_type(
        gguf.LlamaFileType.MOSTLY_F16 if dtype == "F16" else gguf.LlamaFileType.ALL_F32
    )
    writer.add_context_length(s.context)
    writer.add_embedding_length(s.embedding)
    writer.add_block_count(s.layers)
    writer.add_feed_forward_length(s.feed_forward)
    writer.add_head_count(s.heads)
    writer.add_head_count_kv(s.kv_heads)
    writer.add_rope_dimension_count(s.head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    # A name llama.cpp's template detection knows: conversations render as ChatML.
    writer.add_chat_template("chatml")

    def matrix(name: str, rows: int, cols: int) -> None:
        weights = rng.normal(0.0, 0.02, size=(rows, cols)).astype(matrix_type)
        writer.add_tensor(name, weights)

    def norm(name: str, size: int = s.embedding) -> None:
        writer.add_tensor(name, np.ones(size, dtype=np.float32))

    kv = s.kv_heads * s.head_dim
    matrix("token_embd.weight", len(tokens), s.embedding)
    for i in range(s.layers):
        norm(f"blk.{i}.attn_norm.weight")
        matrix(f"blk.{i}.attn_q.weight", s.embedding, s.embedding)
        matrix(f"blk.{i}.attn_k.weight", kv, s.embedding)
        matrix(f"blk.{i}.attn_v.weight", kv, s.embedding)
        matrix(f"blk.{i}.attn_output.weight", s.embedding, s.embedding)
        if architecture == "qwen3":
            norm(f"blk.{i}.attn_q_norm.weight", s.head_dim)
            norm(f"blk.{i}.attn_k_norm.weight", s.head_dim)
        norm(f"blk.{i}.ffn_norm.weight")
        matrix(f"blk.{i}.ffn_gate.weight", s.feed_forward, s.embedding)
        matrix(f"blk.{i}.ffn_up.weight", s.feed_forward, s.embedding)
        matrix(f"blk.{i}.ffn_down.weight", s.embedding, s.feed_forward)
    norm("output_norm.weight")
    matrix("output.weight", len(tokens), s.embedding)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
