"""Quantization through llama_model_quantize: results that load, refusals in one line."""

from __future__ import annotations

from pathlib import Path

import gguf
import llama_cpp
import numpy as np
import pytest

from luodi.errors import ConfigError, ModelLoadError
from luodi.models import inspect_model
from luodi.models.imatrix import load_imatrix
from luodi.models.quantize import plan_quantize, run_quantize
from tests.models.tiny_gguf import TinyShape, write_tiny_llama


def _loads(path: Path) -> int:
    """llama.cpp's parameter count of a file it loads (mmap, no context)."""
    model = llama_cpp.llama_model_load_from_file(
        str(path).encode(), llama_cpp.llama_model_default_params()
    )
    assert model, f"llama.cpp could not load {path}"
    try:
        return int(llama_cpp.llama_model_n_params(model))
    finally:
        llama_cpp.llama_model_free(model)


def _write_imatrix(path: Path, shape: TinyShape) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_type("imatrix")
    rng = np.random.default_rng(1)
    inputs = {"ffn_down": shape.feed_forward}
    for layer in range(shape.layers):
        for name in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
            columns = inputs.get(name, shape.embedding)
            base = f"blk.{layer}.{name}.weight"
            writer.add_tensor(f"{base}.in_sum2", rng.random((1, columns)).astype(np.float32) * 8)
            writer.add_tensor(f"{base}.counts", np.array([[8.0]], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_q8_0_of_an_f16_model_is_smaller_and_loads(tiny_f16: Path, tmp_path: Path) -> None:
    seen: list[int] = []
    plan = plan_quantize(tiny_f16, tmp_path / "q8.gguf", "q8_0", threads=2)
    assert (plan.source_type, plan.type, plan.warnings) == ("F16", "Q8_0", ())
    result = run_quantize(plan, lambda written, _s: seen.append(written))
    assert result.output_bytes == (tmp_path / "q8.gguf").stat().st_size
    # Q8_0 stores 34 bytes per 32 weights against F16's 64.
    assert 0.5 < result.output_bytes / result.source_bytes < 0.6
    assert seen and seen[-1] == result.output_bytes
    info = inspect_model(tmp_path / "q8.gguf")
    assert info.file_type == "Q8_0"
    assert {s.type for s in info.quantization} == {"Q8_0", "F32"}
    assert _loads(tmp_path / "q8.gguf") == info.parameters == inspect_model(tiny_f16).parameters
    assert not (tmp_path / "q8.gguf.partial").exists()


def test_k_quant_mixes_types_as_llama_cpp_chooses(tiny_f16: Path, tmp_path: Path) -> None:
    run_quantize(plan_quantize(tiny_f16, tmp_path / "q4km.gguf", "Q4_K_M", threads=2))
    info = inspect_model(tmp_path / "q4km.gguf")
    assert info.file_type == "Q4_K_M"
    assert {"Q4_K", "Q6_K"} <= {s.type for s in info.quantization}
    _loads(tmp_path / "q4km.gguf")


def test_requantizing_is_refused_unless_allowed(tiny_f16: Path, tmp_path: Path) -> None:
    q8 = tmp_path / "q8.gguf"
    run_quantize(plan_quantize(tiny_f16, q8, "Q8_0", threads=2))
    with pytest.raises(ConfigError, match=r"already quantized \(Q8_0\).*--allow-requantize"):
        plan_quantize(q8, tmp_path / "q4.gguf", "Q4_0")
    with pytest.raises(ConfigError, match="already Q8_0; nothing to do"):
        plan_quantize(q8, tmp_path / "q8b.gguf", "Q8_0", allow_requantize=True)
    plan = plan_quantize(q8, tmp_path / "q4.gguf", "Q4_0", allow_requantize=True, threads=2)
    assert plan.warnings and "requantizing from Q8_0" in plan.warnings[0]
    run_quantize(plan)
    assert inspect_model(tmp_path / "q4.gguf").file_type == "Q4_0"


def test_very_low_bit_types_use_an_importance_matrix(tiny_f16: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="IQ2_XS needs an importance matrix"):
        plan_quantize(tiny_f16, tmp_path / "iq2.gguf", "IQ2_XS")
    matrix = _write_imatrix(tmp_path / "tiny.imatrix.gguf", TinyShape())
    assert len(load_imatrix(matrix).entries) == 14
    plan = plan_quantize(tiny_f16, tmp_path / "iq2.gguf", "IQ2_XS", imatrix=matrix, threads=2)
    run_quantize(plan)
    info = inspect_model(tmp_path / "iq2.gguf")
    assert info.file_type == "IQ2_XS" and "IQ2_XS" in {s.type for s in info.quantization}
    _loads(tmp_path / "iq2.gguf")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"type_name": "Q9_9"}, "unknown quantization type 'Q9_9'; known: F32, F16"),
        ({"type_name": "F16"}, "already F16; nothing to do"),
    ],
)
def test_bad_requests_are_refused_in_one_line(
    tiny_f16: Path, tmp_path: Path, args: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        plan_quantize(tiny_f16, tmp_path / "out.gguf", **args)
    assert "\n" not in caught.value.message


def test_an_existing_destination_needs_force(tiny_f16: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out.gguf"
    dst.write_bytes(b"keep me")
    with pytest.raises(ConfigError, match="exists; pass --force"):
        plan_quantize(tiny_f16, dst, "Q8_0")
    run_quantize(plan_quantize(tiny_f16, dst, "Q8_0", force=True, threads=2))
    assert inspect_model(dst).file_type == "Q8_0"
    with pytest.raises(ConfigError, match="the destination is the source"):
        plan_quantize(tiny_f16, tiny_f16, "Q8_0", force=True)


def test_an_adapter_or_an_importance_matrix_is_not_a_model(tmp_path: Path) -> None:
    matrix = _write_imatrix(tmp_path / "m.gguf", TinyShape())
    with pytest.raises(ConfigError, match="is a GGUF imatrix, not a model"):
        plan_quantize(matrix, tmp_path / "out.gguf", "Q8_0")


def test_a_bad_importance_matrix_is_refused(tiny_f16: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.dat"
    bad.write_bytes(b"\xff\xff\xff\xff garbage")
    with pytest.raises(ConfigError, match="not an importance matrix"):
        plan_quantize(tiny_f16, tmp_path / "out.gguf", "Q4_K_M", imatrix=bad)
    with pytest.raises(ConfigError, match=r"importance matrix .* not found"):
        plan_quantize(tiny_f16, tmp_path / "out.gguf", "Q4_K_M", imatrix=tmp_path / "none")


def test_llama_cpp_failure_says_why_in_one_line(tmp_path: Path) -> None:
    # A well-formed GGUF of an architecture llama.cpp does not know.
    src = write_tiny_llama(tmp_path / "odd.gguf")
    data = (
        src.read_bytes()
        .replace(b"llama.", b"ollma.")
        .replace(b"\x05\x00\x00\x00\x00\x00\x00\x00llama", b"\x05\x00\x00\x00\x00\x00\x00\x00ollma")
    )
    src.write_bytes(data)
    plan = plan_quantize(src, tmp_path / "out.gguf", "Q8_0")
    with pytest.raises(
        ModelLoadError, match=r"quantizing odd.gguf to Q8_0 failed: .*ollma"
    ) as caught:
        run_quantize(plan)
    assert "\n" not in caught.value.message
    assert not (tmp_path / "out.gguf").exists()
    assert not (tmp_path / "out.gguf.partial").exists()
