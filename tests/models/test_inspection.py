"""``inspect_model`` and the memory arithmetic against what the files and llama.cpp say."""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import pytest

from luodi.errors import ConfigError
from luodi.models import inspect_model, model_memory, read_gguf_header
from tests.conftest import default_gguf
from tests.models.tiny_gguf import TinyShape


def test_tiny_model_figures_are_the_ones_it_was_written_with(tiny_f16: Path) -> None:
    shape = TinyShape()
    info = inspect_model(tiny_f16)
    assert (info.architecture, info.file_type, info.name) == ("llama", "F16", "tiny-llama")
    assert (info.layers, info.embedding_length) == (shape.layers, shape.embedding)
    assert (info.heads, info.kv_heads, info.gqa_ratio) == (8, 2, 4.0)
    assert info.head_dim == shape.head_dim == 32
    assert info.context_length == shape.context
    assert info.file_size == tiny_f16.stat().st_size
    mix = {s.type: s for s in info.quantization}
    assert set(mix) == {"F16", "F32"}
    # Every F16 matrix is 2 bytes a weight; the five norms stay F32.
    assert mix["F16"].bytes == 2 * mix["F16"].parameters
    assert (mix["F32"].tensors, mix["F32"].parameters) == (5, 5 * shape.embedding)
    assert info.parameters == mix["F16"].parameters + mix["F32"].parameters


def test_kv_bytes_per_token_follow_the_kv_heads_not_the_query_heads(tiny_f16: Path) -> None:
    mem = model_memory(tiny_f16, kv_type="f16")
    # K and V, 2 layers, 2 KV heads of 32, at 2 bytes; Q8_0 is 34 bytes per 32 values.
    assert mem.kv_bytes_per_token == 2 * 2 * 2 * 32 * 2 == 512
    assert mem.kv_per_token_as["q8_0"] == 2 * 2 * 2 * 32 * 34 / 32 == 272
    assert mem.kv_bytes_per_token_without_gqa == 4 * mem.kv_bytes_per_token


def test_sequences_that_fit_count_the_kv_beside_the_weights(tiny_f16: Path) -> None:
    mem = model_memory(tiny_f16, kv_type="f16")
    per_sequence = mem.kv_bytes(1000)
    assert mem.sequences_that_fit(mem.weight_bytes + 10 * per_sequence, 1000) == 10
    assert mem.sequences_that_fit(mem.weight_bytes + 10 * per_sequence - 1, 1000) == 9
    assert mem.sequences_that_fit(mem.weight_bytes, 1000) == 0
    # The same memory holds about twice as many sequences with a Q8_0 cache.
    assert mem.sequences_that_fit(mem.weight_bytes + 10 * per_sequence, 1000, "q8_0") == 18


@pytest.mark.model
def test_default_model_figures_match_llama_cpp() -> None:
    path = default_gguf()
    info = inspect_model(path)
    # A full (memory-mapped) load: a vocab-only one leaves the layer counts at zero.
    model = llama_cpp.llama_model_load_from_file(
        str(path).encode(), llama_cpp.llama_model_default_params()
    )
    assert model
    try:
        assert info.architecture == "gemma3"
        assert info.layers == llama_cpp.llama_model_n_layer(model)
        assert info.heads == llama_cpp.llama_model_n_head(model)
        assert info.kv_heads == llama_cpp.llama_model_n_head_kv(model)
        assert info.embedding_length == llama_cpp.llama_model_n_embd(model)
        assert info.context_length == llama_cpp.llama_model_n_ctx_train(model)
        assert info.parameters == llama_cpp.llama_model_n_params(model)
        # llama.cpp counts the tensors' bytes; the file adds alignment padding only.
        size = llama_cpp.llama_model_size(model)
        tensors = len(read_gguf_header(path).tensors)
        assert size <= info.memory.weight_bytes < size + 32 * tensors
        vocab = llama_cpp.llama_model_get_vocab(model)
        assert info.vocab_size == llama_cpp.llama_vocab_n_tokens(vocab)
    finally:
        llama_cpp.llama_model_free(model)
    assert info.file_type == "Q4_K_M" and info.gqa_ratio == 4.0
    assert info.sliding_window is not None
    assert {s.type for s in info.quantization} >= {"Q4_K", "Q6_K", "F32"}


def test_a_truncated_file_is_a_clear_error(tiny_f16: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_f16.read_bytes()[:2000])
    with pytest.raises(ConfigError, match="truncated"):
        read_gguf_header(cut)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"LUODIENC" + b"\0" * 64, "not a GGUF file"), (b"GGUF\x01\0\0\0", "too old")],
)
def test_not_a_usable_gguf_file_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        inspect_model(path)
