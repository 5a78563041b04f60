"""A BERT encoder forward pass in plain numpy (inference only, float32).

Enough of ``transformers.BertModel`` to run sentence-transformers checkpoints
(absolute positions, post-LayerNorm, exact GELU) from a safetensors state dict,
without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]

# Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, enough for float32 GELU.
_AS_P = np.float32(0.3275911)
_AS_A = (
    np.float32(0.254829592),
    np.float32(-0.284496736),
    np.float32(1.421413741),
    np.float32(-1.453152027),
    np.float32(1.061405429),
)


def _erf(x: F32) -> F32:
    sign = np.sign(x)
    ax = np.abs(x)
    t = np.float32(1.0) / (np.float32(1.0) + _AS_P * ax)
    a1, a2, a3, a4, a5 = _AS_A
    poly = ((((a5 * t + a4) * t + a3) * t + a2) * t + a1) * t
    return np.asarray(sign * (np.float32(1.0) - poly * np.exp(-ax * ax)), dtype=np.float32)


def _gelu(x: F32) -> F32:
    # BERT's "gelu" is the exact erf form, not the tanh approximation.
    return np.asarray(
        np.float32(0.5) * x * (np.float32(1.0) + _erf(x * np.float32(0.7071067811865476))),
        dtype=np.float32,
    )


def _layer_norm(x: F32, weight: F32, bias: F32, eps: float) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return np.asarray((x - mean) / np.sqrt(var + np.float32(eps)) * weight + bias, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv_w: F32  # (hidden, 3*hidden), pre-transposed and fused
    qkv_b: F32
    out_w: F32
    out_b: F32
    ln1_w: F32
    ln1_b: F32
    up_w: F32
    up_b: F32
    down_w: F32
    down_b: F32
    ln2_w: F32
    ln2_b: F32


class BertEncoder:
    """The encoder stack of a BERT checkpoint; ``forward`` returns the last hidden states."""

    def __init__(self, weights: dict[str, NDArray[np.generic]], n_heads: int, eps: float) -> None:
        def w(key: str) -> F32:
            return np.ascontiguousarray(weights[key], dtype=np.float32)

        self.n_heads = n_heads
        self.eps = eps
        self.word = w("embeddings.word_embeddings.weight")
        self.position = w("embeddings.position_embeddings.weight")
        self.token_type = w("embeddings.token_type_embeddings.weight")
        self.emb_ln_w = w("embeddings.LayerNorm.weight")
        self.emb_ln_b = w("embeddings.LayerNorm.bias")
        self.hidden = int(self.word.shape[1])
        self.max_positions = int(self.position.shape[0])
        layers: list[_Layer] = []
        i = 0
        while f"encoder.layer.{i}.attention.self.query.weight" in weights:
            p = f"encoder.layer.{i}."
            q, k, v = (w(p + f"attention.self.{n}.weight") for n in ("query", "key", "value"))
            qb, kb, vb = (w(p + f"attention.self.{n}.bias") for n in ("query", "key", "value"))
            layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(np.concatenate([q, k, v], axis=0).T),
                    qkv_b=np.concatenate([qb, kb, vb]),
                    out_w=np.ascontiguousarray(w(p + "attention.output.dense.weight").T),
                    out_b=w(p + "attention.output.dense.bias"),
                    ln1_w=w(p + "attention.output.LayerNorm.weight"),
                    ln1_b=w(p + "attention.output.LayerNorm.bias"),
                    up_w=np.ascontiguousarray(w(p + "intermediate.dense.weight").T),
                    up_b=w(p + "intermediate.dense.bias"),
                    down_w=np.ascontiguousarray(w(p + "output.dense.weight").T),
                    down_b=w(p + "output.dense.bias"),
                    ln2_w=w(p + "output.LayerNorm.weight"),
                    ln2_b=w(p + "output.LayerNorm.bias"),
                )
            )
            i += 1
        if not layers:
            raise ValueError("no encoder.layer.* weights in the checkpoint")
        self.layers = tuple(layers)

    def forward(self, ids: NDArray[np.int64], mask: NDArray[np.int64]) -> F32:
        """Hidden states ``(batch, seq, hidden)`` of padded ``ids`` with attention ``mask``."""
        batch, seq = ids.shape
        x = self.word[ids] + self.position[np.arange(seq)][None, :, :] + self.token_type[0]
        x = _layer_norm(x.astype(np.float32), self.emb_ln_w, self.emb_ln_b, self.eps)
        head = self.hidden // self.n_heads
        scale = np.float32(1.0 / np.sqrt(head))
        # Padded keys get a large negative bias, as transformers does (finfo.min).
        bias = ((1 - mask[:, None, None, :]).astype(np.float32) * np.float32(-1e30)).astype(
            np.float32
        )
        for layer in self.layers:
            qkv = x @ layer.qkv_w + layer.qkv_b
            qkv = qkv.reshape(batch, seq, 3, self.n_heads, head).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, self.hidden)
            x = _layer_norm(ctx @ layer.out_w + layer.out_b + x, layer.ln1_w, layer.ln1_b, self.eps)
            up = _gelu((x @ layer.up_w + layer.up_b).astype(np.float32))
            x = _layer_norm(
                up @ layer.down_w + layer.down_b + x, layer.ln2_w, layer.ln2_b, self.eps
            )
        return x
