"""``luodi model inspect|quantize|finetune``: figures, progress, one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from luodi.cli.model import app
from tests.conftest import default_gguf
from tests.models.tiny_gguf import write_tiny_llama

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("cli") / "tiny.gguf")


def _one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


def test_inspect_json_has_the_figures_and_the_fit(tiny: Path) -> None:
    result = runner.invoke(app, ["inspect", str(tiny), "--json", "--context", "1000"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["architecture"], info["heads"], info["kv_heads"]) == ("llama", 8, 2)
    assert info["gqa_ratio"] == 4.0 and info["head_dim"] == 32
    assert info["memory"]["kv_per_token_as"]["f16"] == 512
    assert info["estimate"]["kv_bytes_per_sequence"]["f16"] == 512_000
    assert info["estimate"]["sequences_that_fit"]["q8_0"] > 0


def test_inspect_tables_name_gqa_and_the_mix(tiny: Path) -> None:
    result = runner.invoke(app, ["inspect", str(tiny), "--memory-gib", "1"])
    assert result.exit_code == 0, result.output
    assert "GQA 4:1" in result.output and "quantization mix" in result.output
    assert "sequences that fit" in result.output


@pytest.mark.model
def test_inspect_the_default_model() -> None:
    result = runner.invoke(app, ["inspect", str(default_gguf()), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["architecture"], info["file_type"], info["layers"]) == ("gemma3", "Q4_K_M", 18)


@pytest.mark.parametrize("content", [b"", b'{"text": 1}\n', b"GGUF\x03\x00\x00\x00"])
def test_inspect_a_bad_file_is_one_line_and_exit_2(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    result = runner.invoke(app, ["inspect", str(bad)])
    assert result.exit_code == 2
    assert "bad.gguf" in _one_line_error(result.output)


def test_quantize_writes_a_smaller_file(tiny: Path, tmp_path: Path) -> None:
    dst = tmp_path / "q8.gguf"
    result = runner.invoke(
        app, ["quantize", str(tiny), str(dst), "--type", "Q8_0", "--threads", "2"]
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {dst} (Q8_0)" in result.output
    assert 0 < dst.stat().st_size < tiny.stat().st_size


def test_requantize_is_refused_in_one_line(tiny: Path, tmp_path: Path) -> None:
    q8 = tmp_path / "q8.gguf"
    assert runner.invoke(app, ["quantize", str(tiny), str(q8), "--type", "Q8_0"]).exit_code == 0
    result = runner.invoke(app, ["quantize", str(q8), str(tmp_path / "q4.gguf"), "--type", "Q4_0"])
    assert result.exit_code == 2
    assert "--allow-requantize" in _one_line_error(result.output)
    assert not (tmp_path / "q4.gguf").exists()


def test_quantize_refuses_an_existing_destination(tiny: Path, tmp_path: Path) -> None:
    dst = tmp_path / "exists.gguf"
    dst.write_bytes(b"x")
    result = runner.invoke(app, ["quantize", str(tiny), str(dst), "--type", "Q8_0"])
    assert result.exit_code == 2 and "--force" in _one_line_error(result.output)
    assert dst.read_bytes() == b"x"


@pytest.mark.model
def test_finetune_refuses_gemma_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "records.jsonl"
    data.write_text('{"text": "hello"}\n', encoding="utf-8")
    args = ["finetune", str(default_gguf()), "--data", str(data), "--out", str(tmp_path / "o")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "GEGLU" in _one_line_error(result.output)


def test_finetune_trains_and_reports(tmp_path: Path) -> None:
    base = write_tiny_llama(tmp_path / "tiny-f32.gguf", dtype="F32")
    data = tmp_path / "records.jsonl"
    text = "the model luodi is in the data and a model of the data is in luodi " * 3
    data.write_text("".join(json.dumps({"text": text}) + "\n" for _ in range(30)), encoding="utf-8")
    out, report = tmp_path / "tuned.gguf", tmp_path / "run.json"
    args = ["finetune", str(base), "--data", str(data), "--out", str(out), "--lr", "1e-3"]
    result = runner.invoke(app, [*args, "--threads", "2", "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "epoch 1 step 1/" in result.output and "held-out loss" in result.output
    figures = json.loads(report.read_text(encoding="utf-8"))
    assert figures["held_out_loss_after"] < figures["held_out_loss_before"]
    assert out.stat().st_size == figures["output_bytes"]
