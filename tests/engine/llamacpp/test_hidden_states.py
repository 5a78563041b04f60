"""Mean hidden states of the default model, read part-way through its layers."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from luodi.engine.llamacpp.hidden_states import HiddenStates
from luodi.errors import ModelLoadError
from tests.conftest import default_gguf


@pytest.fixture(scope="module")
def states() -> Iterator[HiddenStates]:
    reader = HiddenStates(default_gguf(), max_tokens=32)
    yield reader
    reader.close()


def test_a_layer_read_by_stopping_there_equals_the_same_layer_of_a_deeper_pass(
    states: HiddenStates,
) -> None:
    texts = ["我买的耳机发出来没有", "where is my order"]
    shallow = states.pooled(texts, [6])
    deep = states.pooled(texts, [6, states.n_layer - 1])
    assert shallow[6].shape == (2, states.n_embd)
    np.testing.assert_array_equal(shallow[6], deep[6])
    # The last layer is a different representation, not the layer asked first again.
    assert not np.allclose(deep[6], deep[states.n_layer - 1])


def test_states_tell_texts_apart_and_repeat_for_the_same_text(states: HiddenStates) -> None:
    rows = states.pooled(["退款多久到账", "退款多久到账", "今天天气怎么样"], [6])[6]
    np.testing.assert_array_equal(rows[0], rows[1])
    assert not np.allclose(rows[0], rows[2])
    assert np.isfinite(rows).all()


def test_empty_and_overlong_texts_are_read_within_the_context(states: HiddenStates) -> None:
    rows = states.pooled(["", "订单" * 500, "refund " * 500], [3])[3]
    assert rows.shape == (3, states.n_embd) and np.isfinite(rows).all()
    # Cut at max_tokens: a text that only grows past the cut reads the same.
    longer = states.pooled(["订单" * 600], [3])[3]
    np.testing.assert_array_equal(rows[1], longer[0])


def test_layers_outside_the_model_are_refused(states: HiddenStates) -> None:
    with pytest.raises(ValueError, match=r"layers must be in 0\.\.17"):
        states.pooled(["hi"], [states.n_layer])
    with pytest.raises(ValueError, match="layers must be"):
        states.pooled(["hi"], [])


def test_a_file_that_is_not_a_gguf_is_a_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError):
        HiddenStates(bad)


def test_callers_at_once_are_read_together_each_as_if_alone(states: HiddenStates) -> None:
    # Concurrent callers share batched decodes; the kernels are batch-invariant, so each
    # text reads exactly as it does alone (an intent must not depend on the load).
    texts = [f"第{i}个问题：我的订单什么时候到 order {i}" for i in range(12)]
    alone = {t: states.pooled([t], [4])[4][0] for t in texts}
    with ThreadPoolExecutor(max_workers=12) as pool:
        together = list(pool.map(lambda t: states.pooled([t], [4])[4][0], texts))
    for text, row in zip(texts, together, strict=True):
        np.testing.assert_array_equal(row, alone[text])


def test_a_closed_reader_refuses_new_texts() -> None:
    reader = HiddenStates(default_gguf(), max_tokens=16)
    reader.close()
    with pytest.raises(ModelLoadError, match="closed"):
        reader.pooled(["hi"], [1])
