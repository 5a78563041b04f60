"""``embeddings`` settings are checked, and the factory builds what they name."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from luodi.config.embeddings import EmbeddingSettings
from luodi.embedding import Embedder
from luodi.engine.embeddings import MiniLMEmbedder, build_embedder
from luodi.errors import ModelLoadError


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": "bge-m3"}, "must be 'minilm' or a path ending in .gguf"),
        ({"pooling": "cls"}, "applies to a GGUF model only"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_tokens": 8}, "max_tokens"),
        ({"backend": "numpy", "precision": "int8"}, "needs embeddings.backend='onnxruntime'"),
        ({"model": "/m/bge-m3.gguf", "precision": "fp32"}, "applies to model 'minilm' only"),
        ({"backend": "torch"}, "backend"),
    ],
)
def test_invalid_settings_are_refused_naming_the_value(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        EmbeddingSettings(**fields)  # type: ignore[arg-type]


def test_default_settings_build_minilm_with_default_name() -> None:
    embedder = build_embedder(EmbeddingSettings())
    assert isinstance(embedder, MiniLMEmbedder)
    assert embedder.name == "all-minilm-l6-v2"
    assert embedder.dim == 384


def test_numpy_backend_is_still_selectable() -> None:
    embedder = build_embedder(EmbeddingSettings(backend="numpy"))
    assert isinstance(embedder, MiniLMEmbedder)
    assert (embedder.backend, embedder.precision) == ("numpy", "fp32")


def test_served_name_is_configurable() -> None:
    assert build_embedder(EmbeddingSettings(served_name="text-embed")).name == "text-embed"


def test_missing_gguf_is_a_model_load_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.gguf"
    with pytest.raises(ModelLoadError, match=r"absent\.gguf"):
        build_embedder(EmbeddingSettings(model=str(path)))


class _Fixed:
    name = "fixed"
    dim = 2
    max_tokens = 8

    def tokenize(self, text: str) -> list[int]:
        return [1] * len(text.split())

    def count_tokens(self, texts: object) -> list[int]:
        return [len(self.tokenize(t)) for t in texts]  # type: ignore[attr-defined]

    def embed(self, texts: object) -> object:
        raise NotImplementedError


def test_registry_entry_wins_over_gguf_path() -> None:
    settings = EmbeddingSettings.model_construct(model="fixed")
    embedder = build_embedder(settings, registry={"fixed": lambda s: _Fixed()})
    assert isinstance(embedder, Embedder)
    assert embedder.name == "fixed"
