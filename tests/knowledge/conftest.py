"""Fixtures of the knowledge tests: one MiniLM per session, a fresh service per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kb_factories import ListAudit

from luodi.config.knowledge import KnowledgeSettings
from luodi.engine.embeddings import MiniLMEmbedder
from luodi.knowledge import KnowledgeService


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    """The bundled MiniLM, loaded once."""
    return MiniLMEmbedder()


@pytest.fixture
def audit() -> ListAudit:
    return ListAudit()


@pytest.fixture
def make_service(
    tmp_path: Path, embedder: MiniLMEmbedder, audit: ListAudit
) -> Callable[..., KnowledgeService]:
    """Build a service on ``tmp_path`` (call again to reopen the same data)."""

    def make(**overrides: Any) -> KnowledgeService:
        settings = KnowledgeSettings(data_dir=tmp_path / "kb", **overrides)
        return KnowledgeService(settings, embedder, audit=audit)

    return make
