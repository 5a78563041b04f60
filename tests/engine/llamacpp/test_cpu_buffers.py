"""Extra weight buffers: an engine that opts out of batch invariance must still run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from luodi.engine.llamacpp.cpu_buffers import cpu_extra_buffer_types, extra_buffers_usable

_DECODE_A_BATCH = """
import sys
from pathlib import Path
import numpy as np
from luodi.engine.llamacpp.default_model import default_model_path
from luodi.engine.llamacpp.model import ContextParams, LlamaModel

model = LlamaModel(
    default_model_path(Path(sys.argv[1])),
    ContextParams(n_ctx=2048, n_seq_max=16, n_batch=512, n_threads=2, n_threads_batch=2,
                  batch_invariant=False),
)
items = []
for s in range(16):
    prompt = model.tokenize(f"Customer {s} asks about the transfer limit of account {s}.")
    items += [(t, i, s, i == len(prompt) - 1) for i, t in enumerate(prompt)]
assert model.decode(items) == 0
last = [i for i, item in enumerate(items) if item[3]]
tokens = [int(np.argmax(model.logits(i))) for i in last]
positions = [items[i][1] + 1 for i in last]
for _ in range(4):
    assert model.decode([(t, p, s, True) for s, (t, p) in enumerate(zip(tokens, positions))]) == 0
    tokens = [int(np.argmax(model.logits(s))) for s in range(16)]
    positions = [p + 1 for p in positions]
print("decoded", len(tokens))
"""


def test_a_non_invariant_model_decodes_a_batch_with_llama_cpps_default_kernels(
    model_cache: Path,
) -> None:
    # Its own process: ggml fixes its kernels once per process, and a faulting kernel
    # (the AMX buffer's tile code on AMX machines) would take pytest down with it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GGML_CPU_TILED")}
    proc = subprocess.run(
        [sys.executable, "-c", _DECODE_A_BATCH, str(model_cache)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "decoded 16" in proc.stdout


def test_extra_buffers_are_never_used_by_a_batch_invariant_engine() -> None:
    assert extra_buffers_usable(batch_invariant=True) is False
    assert all(isinstance(name, str) and name for name in cpu_extra_buffer_types())
    if "AMX" in cpu_extra_buffer_types():
        assert extra_buffers_usable(batch_invariant=False) is False
