"""The BERT encoder run by ONNX Runtime: the graph of :mod:`._bert_graph`, built at load.

Building the graph and the session takes about a second; nothing is written to disk, so
there is no cache to invalidate when the weights package changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from luodi.engine.embeddings._bert import BertEncoder
from luodi.engine.embeddings._bert_graph import UNFUSED, Precision, bert_onnx_model

__all__ = ["OrtBertEncoder", "cpu_has_vnni"]

_VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})


def cpu_has_vnni(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU has an int8 dot-product instruction (AVX-512 VNNI or AVX-VNNI).

    Read from Linux's ``/proc/cpuinfo``; False where that file is absent, which only
    makes int8 weights keep to 7 bits (a little less exact, never wrong).
    """
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return not _VNNI_FLAGS.isdisjoint(line.split(":", 1)[-1].split())
    return False


class OrtBertEncoder:
    """Same contract as :class:`BertEncoder.forward`, executed by ONNX Runtime.

    A forward pass runs on the calling thread alone (no ONNX Runtime thread pool): callers
    get parallelism by running batches on several threads, which ``InferenceSession.run``
    allows, and those threads are theirs, OS priority included. Across batches that
    scales better than splitting each small GEMM between cores, and nothing spin-waits
    on a machine shared with the serving engine.

    Args:
        encoder: the numpy encoder whose weights are used (it is not kept).
        precision: ``fp32`` (the numpy encoder's vectors to ~1e-6) or ``int8``.
    """

    def __init__(self, encoder: BertEncoder, precision: Precision = "int8") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # shape-merge warnings of the fused ops are noise
        model = bert_onnx_model(encoder, precision, vnni=cpu_has_vnni())
        self._session = ort.InferenceSession(
            model, options, providers=["CPUExecutionProvider"], disabled_optimizers=list(UNFUSED)
        )
        self.hidden = encoder.hidden
        self.max_positions = encoder.max_positions
        self.precision: Precision = precision

    def forward(self, ids: NDArray[np.int64], mask: NDArray[np.int64]) -> NDArray[np.float32]:
        """Hidden states ``(batch, seq, hidden)`` of right-padded ``ids`` with ``mask``."""
        out = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return np.asarray(out, dtype=np.float32)
