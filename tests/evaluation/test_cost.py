"""Cost model arithmetic, the price sheet, and model memory from a real GGUF header."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from luodi.errors import ConfigError
from luodi.evaluation.cost import CostModel, load_prices, measured_throughput
from luodi.models.memory import model_memory
from tests.conftest import default_gguf


def _bench(tmp_path: Path, levels: list[tuple[int, float]]) -> Path:
    path = tmp_path / "bench.json"
    rows = [{"concurrency": c, "requests": c, "throughput_tok_s": t} for c, t in levels]
    path.write_text(json.dumps({"model": "m", "url": "u", "levels": rows}))
    return path


def test_default_price_sheet_is_dated_and_valid() -> None:
    sheet = load_prices()
    assert sheet.taken_on and sheet.private.life_years > 0


def test_bad_price_sheet_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    raw = load_prices().model_dump()
    raw["private"]["pue"] = 0.5
    path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=r"private\.pue"):
        load_prices(path)


def test_best_measured_level_is_the_capacity(tmp_path: Path) -> None:
    assert measured_throughput(_bench(tmp_path, [(1, 40.0), (16, 250.0), (32, 240.0)])) == (
        250.0,
        16,
        "m",
    )


def test_private_cost_per_million_follows_the_yearly_lines() -> None:
    sheet = load_prices()
    model = CostModel(sheet, peak_output_tok_s=1000.0)
    yearly = sum(model.private_per_year().values())
    tokens_a_year = 1000.0 * sheet.workload.target_utilisation * 86_400 * 365
    assert model.per_million_at_capacity() == pytest.approx(yearly / tokens_a_year * 1e6)


def test_break_even_is_where_private_and_api_cost_the_same() -> None:
    model = CostModel(load_prices(), peak_output_tok_s=5000.0)
    even = model.break_even_per_day()
    assert even is not None and even <= model.capacity_per_day
    assert model.daily_cost("private", even) == pytest.approx(model.daily_cost("api", even))
    assert model.daily_cost("private", even * 0.5) > model.daily_cost("api", even * 0.5)


def test_no_break_even_when_a_full_server_costs_more_than_the_api() -> None:
    assert CostModel(load_prices(), peak_output_tok_s=10.0).break_even_per_day() is None


def test_hybrid_sends_only_the_overflow_to_the_api() -> None:
    model = CostModel(load_prices(), peak_output_tok_s=100.0)
    over = model.capacity_per_day * 3
    assert model.daily_cost("hybrid", over) == pytest.approx(
        model.private_per_day() + 2 * model.capacity_per_day * model.api_per_output_token()
    )


@pytest.mark.model
def test_memory_of_the_default_model_matches_llama_cpp_metadata() -> None:
    import llama_cpp

    path = default_gguf()
    mem = model_memory(path, kv_type="f16")
    vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    meta = vocab.metadata
    arch = meta["general.architecture"]
    assert mem.layers == int(meta[f"{arch}.block_count"])
    assert mem.kv_heads == int(meta[f"{arch}.attention.head_count_kv"])
    assert mem.weight_bytes < path.stat().st_size < mem.weight_bytes + 10_000_000
    # K and V, every layer, every KV head, at 2 bytes.
    assert mem.kv_bytes_per_token == 2 * mem.layers * mem.kv_heads * mem.head_dim * 2
    assert mem.kv_bytes_per_token_without_gqa == mem.kv_bytes_per_token * mem.heads / mem.kv_heads
    assert mem.weights_as["f16"] == 2 * mem.parameters
    assert mem.sequences_that_fit(mem.weight_bytes, 100) == 0


def test_not_a_gguf_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(b"LUODIENC" + b"\0" * 64)
    with pytest.raises(ConfigError, match="not a GGUF file"):
        model_memory(path)
