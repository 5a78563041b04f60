"""Sequence ids: running sequences and cached prefixes share llama.cpp's 256."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from luodi.config import EngineSettings


def test_more_sequence_ids_than_llama_cpp_has_are_refused_when_configured() -> None:
    with pytest.raises(ValidationError, match=r"need 266 llama\.cpp sequence ids; it has 256"):
        EngineSettings(max_batch_size=250, prefix_cache_slots=16)


def test_without_a_prefix_cache_every_id_may_run_a_sequence() -> None:
    assert EngineSettings(max_batch_size=256, prefix_cache=False).max_batch_size == 256
