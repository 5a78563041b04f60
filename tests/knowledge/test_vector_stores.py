"""Both vector stores keep one contract: the flat default and Qdrant (local mode here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from luodi.config.knowledge import KnowledgeSettings
from luodi.errors import ConfigError
from luodi.knowledge.index.vector_store import FlatVectorStore, VectorStore, build_vector_store
from luodi.knowledge.types import Filter, Payload

qdrant_client = pytest.importorskip("qdrant_client", reason="qdrant-client is not installed")

DIM = 8


@pytest.fixture(params=["flat", "qdrant"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    if request.param == "flat":
        yield FlatVectorStore(tmp_path / "vectors", DIM)
        return
    from luodi.knowledge.index.qdrant_store import QdrantVectorStore

    yield QdrantVectorStore(qdrant_client.QdrantClient(":memory:"), DIM)


def unit(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i % DIM] = 1.0
    v[(i + 1) % DIM] = 0.1
    return v / np.linalg.norm(v)


def fill(store: VectorStore) -> None:
    payloads = [
        Payload("doc-hr", frozenset({"tenant:hr"}), {"lang": "zh"}),
        Payload("doc-fin", frozenset({"tenant:finance"}), {"lang": "en"}),
        Payload("doc-all", frozenset({"tenant:hr", "tenant:finance"}), {"lang": "en"}),
    ]
    store.upsert("kb", ["c0", "c1", "c2"], np.stack([unit(0), unit(1), unit(2)]), payloads)


def test_nearest_chunk_comes_first(store: VectorStore) -> None:
    fill(store)
    hits = store.search("kb", unit(1), 3)
    assert hits[0][0] == "c1" and hits[0][1] > hits[-1][1]
    assert store.count("kb") == 3


def test_access_tags_hide_chunks_inside_the_index(store: VectorStore) -> None:
    fill(store)
    hits = store.search("kb", unit(1), 3, Filter(tags=frozenset({"tenant:hr"})))
    assert {h[0] for h in hits} == {"c0", "c2"}
    assert store.search("kb", unit(1), 3, Filter(tags=frozenset())) == []


def test_metadata_filter_and_deletion(store: VectorStore) -> None:
    fill(store)
    hits = store.search("kb", unit(0), 3, Filter(meta={"lang": "en"}))
    assert {h[0] for h in hits} == {"c1", "c2"}
    store.delete("kb", ["c1"])
    store.flush()
    assert "c1" not in {h[0] for h in store.search("kb", unit(1), 3)}
    store.drop("kb")
    assert store.count("kb") == 0 and store.search("kb", unit(1), 3) == []


def test_the_configured_vector_store_is_built_by_name(tmp_path: Path) -> None:
    store = build_vector_store(KnowledgeSettings(data_dir=tmp_path), DIM)
    assert isinstance(store, FlatVectorStore)


def test_a_vector_store_missing_from_the_registry_is_a_config_error(tmp_path: Path) -> None:
    registry = {"qdrant": lambda _s, dim: FlatVectorStore(None, dim)}
    with pytest.raises(ConfigError, match="unknown vector store 'flat'; known: qdrant"):
        build_vector_store(KnowledgeSettings(data_dir=tmp_path), DIM, registry)
