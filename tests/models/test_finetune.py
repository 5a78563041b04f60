"""Fine-tuning through llama_opt_*: the tiny F32 llama learns; what cannot train is refused."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest

from luodi.errors import ConfigError
from luodi.models import inspect_model
from luodi.models.finetune import FinetuneConfig, StepReport, check_trainable, finetune
from luodi.models.training_data import load_records, split_records
from tests.conftest import default_gguf
from tests.models.tiny_gguf import write_tiny_llama

_SENTENCES = [
    "the model luodi is in the data",
    "a model of the data is in luodi",
    "the data of a model and the model of luodi",
]


def _records(path: Path, n: int = 40) -> Path:
    rows = []
    for i in range(n):
        text = " ".join(_SENTENCES[(i + k) % 3] for k in range(4))
        row = {"text": text} if i % 2 else {"messages": [{"role": "user", "content": text}]}
        rows.append(json.dumps(row))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_the_tiny_model_learns_and_the_result_loads(tiny_f32: Path, tmp_path: Path) -> None:
    steps: list[StepReport] = []
    config = FinetuneConfig(
        base=tiny_f32,
        data=_records(tmp_path / "records.jsonl"),
        out=tmp_path / "tuned.gguf",
        learning_rate=1e-3,
        threads=2,
    )
    result = finetune(config, steps.append)
    train = [s for s in steps if s.phase == "train"]
    assert len(train) == result.steps == len(result.train_losses) > 5
    assert train[-1].step == train[-1].steps
    # Random weights start near ln(vocabulary); the repetitive text is quickly learned.
    assert result.held_out_loss_before > 5.0
    assert result.held_out_loss_after < result.held_out_loss_before - 1.0
    assert result.perplexity_after < result.perplexity_before
    assert result.train_tokens_per_second > 0 and result.peak_rss_bytes > 0
    tuned = inspect_model(config.out)
    assert tuned.architecture == "llama" and tuned.parameters == inspect_model(tiny_f32).parameters


def test_a_qwen3_model_trains_its_query_and_key_norms_too(tmp_path: Path) -> None:
    base = write_tiny_llama(tmp_path / "qwen3.gguf", dtype="F32", architecture="qwen3")
    config = FinetuneConfig(
        base=base,
        data=_records(tmp_path / "records.jsonl"),
        out=tmp_path / "tuned.gguf",
        learning_rate=1e-3,
        threads=2,
    )
    result = finetune(config)
    assert result.held_out_loss_after < result.held_out_loss_before - 1.0
    before = {t.name: np.array(t.data) for t in gguf.GGUFReader(base).tensors}
    after = {t.name: np.array(t.data) for t in gguf.GGUFReader(config.out).tensors}
    unchanged = {name for name in before if np.array_equal(before[name], after[name])}
    # llama.cpp trains every block tensor, the per-head norms too, never the embedding.
    assert unchanged == {"token_embd.weight"}


@pytest.mark.model
def test_gemma_is_refused_before_anything_loads() -> None:
    with pytest.raises(ConfigError, match=r"gemma3 cannot be trained .*\(GEGLU\)"):
        check_trainable(default_gguf())


def test_f16_weights_are_refused_with_the_way_out(tiny_f16: Path) -> None:
    with pytest.raises(ConfigError, match=r"holds F16 weights.*--type F32 --allow-requantize"):
        check_trainable(tiny_f16)


def test_too_little_text_names_the_windows(tiny_f32: Path, tmp_path: Path) -> None:
    data = tmp_path / "few.jsonl"
    data.write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c"}\n', encoding="utf-8")
    config = FinetuneConfig(base=tiny_f32, data=data, out=tmp_path / "o.gguf", held_out=0.34)
    with pytest.raises(ConfigError, match="too little text for --context 256"):
        finetune(config)
    assert not config.out.exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", r"records.jsonl:2: not JSON"),
        ('{"messages": []}', r"records.jsonl:2: messages must be a non-empty list"),
        ('{"title": "x"}', r"records.jsonl:2: a record needs 'messages' or a non-empty 'text'"),
    ],
)
def test_a_malformed_record_names_its_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text('{"text": "fine"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_records(path)


def test_the_held_out_split_is_seeded(tmp_path: Path) -> None:
    records = load_records(_records(tmp_path / "r.jsonl", 20))
    train, held = split_records(records, 0.2, seed=3)
    assert len(held) == 4 and len(train) == 16
    assert split_records(records, 0.2, seed=3) == (train, held)
    assert {r.line for r in train} | {r.line for r in held} == set(range(1, 21))
