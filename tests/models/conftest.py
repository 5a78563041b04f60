"""Tiny random-weight GGUF models, written once per session with the ``gguf`` package."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.models.tiny_gguf import write_tiny_llama


@pytest.fixture(scope="session")
def tiny_f16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny llama model with F16 matrices: a source quantization accepts as it is."""
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-f16.gguf", dtype="F16")


@pytest.fixture(scope="session")
def tiny_f32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny llama model in F32: what llama.cpp's training can update."""
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-f32.gguf", dtype="F32")
