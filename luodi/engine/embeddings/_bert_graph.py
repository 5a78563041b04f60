"""The BERT encoder of :mod:`._bert` as an ONNX graph, built from its numpy weights.

Nothing is exported from torch or fetched from a hub: the graph is written node by node
with the ``onnx`` package from the same safetensors weights the numpy encoder runs, and
handed to ONNX Runtime as bytes. It uses ONNX Runtime's fused CPU kernels (the
``com.microsoft`` domain) where they are faster: ``BiasGelu`` for the exact-erf GELU, and
``Attention`` (QKV projection, masked softmax and context in one kernel) in fp32 or
``MultiHeadAttention`` after an int8 QKV projection; residual adds and LayerNorms are
standard ops (see ``UNFUSED``).

``int8`` runs every weight matrix (QKV, attention output, both feed-forward ones) as a
u8 x s8 integer GEMM (``DynamicQuantizeMatMul``: AVX-512 VNNI where the CPU has it):
weights symmetric int8 with one scale per output column; activations quantized per
**row** (token), asymmetric. ONNX Runtime only quantizes activations per tensor, which
costs MiniLM up to 0.03 of cosine similarity (a token whose range is far wider than the
others' coarsens them all); so each row is first mapped onto [0, 1] by its own min and
range, the per-tensor quantizer then spends all 256 levels on every row, and the row's
scale and offset are put back after the GEMM::

    x @ W = span_r * (unit @ W) + lo_r * colsum(W),   unit = (x - lo_r) / span_r

Embeddings, LayerNorms, softmax, GELU and the attention products stay in float32.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from luodi.engine.embeddings._bert import BertEncoder

__all__ = ["UNFUSED", "Precision", "bert_onnx_model"]

Precision = Literal["fp32", "int8"]
"""Arithmetic of the encoder's weight matrices in the ONNX graph."""

_MS = "com.microsoft"

UNFUSED = ("SkipLayerNormFusion",)
"""ONNX Runtime optimizers to turn off for these graphs. Its fused SkipLayerNormalization
CPU kernel takes 5x the time of Add, Add and the standard LayerNormalization (1.31, a
(432, 384) input: 0.86 vs 0.16 ms), which would be 15% of an int8 forward pass."""
# What ONNX Runtime >= 1.17 reads; the graph needs nothing newer.
_IR_VERSION = 10
_OPSET = 17


class _Graph:
    """Collects nodes and initializers; node outputs are named by a counter."""

    def __init__(self, *, weight_max: int) -> None:
        from onnx import NodeProto, TensorProto

        self.nodes: list[NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._count = 0
        self._weight_max = weight_max

    def const(self, name: str, value: NDArray[np.generic]) -> str:
        """Add an initializer; returns its name."""
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(
        self,
        op_type: str,
        inputs: list[str],
        *,
        domain: str = "",
        n_out: int = 1,
        **attrs: int | float | list[int],
    ) -> list[str]:
        """Add a node; returns the names of its ``n_out`` outputs."""
        from onnx import helper

        self._count += 1
        outs = [f"{op_type}_{self._count}_{i}" for i in range(n_out)]
        node = helper.make_node(
            op_type, inputs, outs, name=f"{op_type}_{self._count}", domain=domain
        )
        node.attribute.extend(helper.make_attribute(k, v) for k, v in attrs.items())
        self.nodes.append(node)
        return outs

    def matmul(self, x: str, w: NDArray[np.float32], name: str, precision: Precision) -> str:
        """``x @ w`` (no bias) over the last axis of ``x``."""
        if precision == "fp32":
            return self.op("MatMul", [x, self.const(name, w)])[0]
        return self._matmul_int8_rows(x, w, name)

    def _matmul_int8_rows(self, x: str, w: NDArray[np.float32], name: str) -> str:
        # Weights: symmetric per output column. ``weight_max`` 63 leaves headroom on CPUs
        # without VNNI, whose u8 x s8 instruction saturates pairs of products at int16.
        amax = np.max(np.abs(w), axis=0)
        scale = np.where(amax > 0, amax / np.float32(self._weight_max), np.float32(1.0))
        scale = scale.astype(np.float32)
        q = np.clip(np.rint(w / scale), -self._weight_max, self._weight_max).astype(np.int8)
        colsum = (q.astype(np.float32) * scale).sum(axis=0).astype(np.float32)
        # Activations: each row onto [0, 1] (see the module docstring).
        lo = self.op("ReduceMin", [x], axes=[-1], keepdims=1)[0]
        hi = self.op("ReduceMax", [x], axes=[-1], keepdims=1)[0]
        tiny = self.const(name + ".tiny", np.array(1e-12, np.float32))
        span = self.op("Max", [self.op("Sub", [hi, lo])[0], tiny])[0]
        # Div, not Mul by a reciprocal: each row's top element is then exactly 1 (and its
        # bottom exactly 0), so the quantizer's per-tensor scale is 1/255 in every batch and
        # a text's vector does not depend on the texts batched with it.
        unit = self.op("Div", [self.op("Sub", [x, lo])[0], span])[0]
        zero = np.zeros(scale.shape, dtype=np.int8)
        y = self.op(
            "DynamicQuantizeMatMul",
            [
                unit,
                self.const(name, q),
                self.const(name + ".scale", scale),
                self.const(name + ".zp", zero),
            ],
            domain=_MS,
        )[0]
        offset = self.op("Mul", [lo, self.const(name + ".colsum", colsum)])[0]
        return self.op("Add", [self.op("Mul", [y, span])[0], offset])[0]

    def add_norm(
        self,
        x: str,
        residual: str,
        bias: NDArray[np.float32],
        w: NDArray[np.float32],
        b: NDArray[np.float32],
        *,
        name: str,
        eps: float,
    ) -> str:
        """``LayerNorm(x + bias + residual)``, in standard ops (see ``UNFUSED``)."""
        biased = self.op("Add", [x, self.const(name + ".bias", bias)])[0]
        summed = self.op("Add", [biased, residual])[0]
        weight, shift = self.const(name + ".ln.weight", w), self.const(name + ".ln.bias", b)
        return self.op("LayerNormalization", [summed, weight, shift], axis=-1, epsilon=eps)[0]

    def attention(
        self,
        x: str,
        mask: str,
        w: NDArray[np.float32],
        b: NDArray[np.float32],
        *,
        name: str,
        n_heads: int,
        precision: Precision,
    ) -> str:
        """Self-attention context of ``x`` with fused QKV weights ``w`` ``(hidden, 3*hidden)``."""
        bias = self.const(name + ".bias", b)
        if precision == "fp32":
            weight = self.const(name + ".weight", w)
            return self.op("Attention", [x, weight, bias, mask], domain=_MS, num_heads=n_heads)[0]
        qkv = self._matmul_int8_rows(x, w, name + ".weight")
        sizes = self.const(name + ".split", np.full(3, w.shape[0], dtype=np.int64))
        q, k, v = self.op("Split", [qkv, sizes], axis=-1, n_out=3)
        return self.op("MultiHeadAttention", [q, k, v, bias, mask], domain=_MS, num_heads=n_heads)[
            0
        ]


def bert_onnx_model(
    encoder: BertEncoder, precision: Precision = "fp32", *, vnni: bool = True
) -> bytes:
    """A serialized ONNX model of ``encoder``: ``(input_ids, attention_mask) -> hidden``.

    Inputs are int64 ``(batch, seq)``, right-padded, ``attention_mask`` 1 on real tokens;
    the output ``last_hidden_state`` is float32 ``(batch, seq, hidden)``, the quantity
    :meth:`BertEncoder.forward` returns.

    Args:
        encoder: the weights.
        precision: ``fp32`` or ``int8`` weight matrices (see the module docstring).
        vnni: the CPU has AVX-512 VNNI or AVX-VNNI. Without it int8 weights keep to 7 bits
            (±63), so that the AVX2 integer kernel never saturates (min cosine vs fp32
            0.9917 instead of 0.9954 over the test texts).
    """
    from onnx import TensorProto, helper

    g = _Graph(weight_max=127 if vnni else 63)
    ids, mask = "input_ids", "attention_mask"
    # Embeddings: word + absolute position (the first ``seq`` rows) + token type 0.
    word = g.op("Gather", [g.const("word_embeddings", encoder.word), ids], axis=0)[0]
    seq = g.op("Shape", [ids], start=1, end=2)[0]
    zero = g.const("zero", np.zeros(1, np.int64))
    pos = g.op("Slice", [g.const("position_embeddings", encoder.position), zero, seq, zero])[0]
    token_type = g.const("token_type_0", encoder.token_type[0])
    summed = g.op("Add", [g.op("Add", [word, pos])[0], token_type])[0]
    ln_w, ln_b = (
        g.const("emb_ln.weight", encoder.emb_ln_w),
        g.const("emb_ln.bias", encoder.emb_ln_b),
    )
    x = g.op("LayerNormalization", [summed, ln_w, ln_b], axis=-1, epsilon=encoder.eps)[0]
    mask32 = g.op("Cast", [mask], to=TensorProto.INT32)[0]
    for i, layer in enumerate(encoder.layers):
        p = f"layer{i}."
        ctx = g.attention(
            x,
            mask32,
            layer.qkv_w,
            layer.qkv_b,
            name=p + "qkv",
            n_heads=encoder.n_heads,
            precision=precision,
        )
        out = g.matmul(ctx, layer.out_w, p + "out", precision)
        x = g.add_norm(
            out, x, layer.out_b, layer.ln1_w, layer.ln1_b, name=p + "out", eps=encoder.eps
        )
        up = g.matmul(x, layer.up_w, p + "up", precision)
        act = g.op("BiasGelu", [up, g.const(p + "up.bias", layer.up_b)], domain=_MS)[0]
        down = g.matmul(act, layer.down_w, p + "down", precision)
        x = g.add_norm(
            down, x, layer.down_b, layer.ln2_w, layer.ln2_b, name=p + "down", eps=encoder.eps
        )
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    graph = helper.make_graph(
        g.nodes,
        f"bert-{precision}",
        [
            helper.make_tensor_value_info(ids, TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info(mask, TensorProto.INT64, ["batch", "seq"]),
        ],
        [
            helper.make_tensor_value_info(
                "last_hidden_state", TensorProto.FLOAT, ["batch", "seq", encoder.hidden]
            )
        ],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        ir_version=_IR_VERSION,
        opset_imports=[helper.make_opsetid("", _OPSET), helper.make_opsetid(_MS, 1)],
        producer_name="luodi",
    )
    return bytes(model.SerializeToString())
