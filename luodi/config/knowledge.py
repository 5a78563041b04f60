"""Settings of the ``knowledge`` section: knowledge bases, chunking and retrieval."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

__all__ = ["KnowledgeSettings"]


class KnowledgeSettings(BaseModel):
    """Where knowledge bases live and how they are chunked and searched."""

    data_dir: Path = Path("data/knowledge")
    """Folder of the vector files, original documents and (by default) the catalog database."""

    database_url: str | None = None
    """SQLAlchemy URL of the catalog. None: SQLite ``catalog.db`` inside ``data_dir``."""

    chunk_tokens: int = Field(default=200, ge=16, le=8192)
    """Most embedding-model tokens per chunk; keep it below the embedder's ``max_tokens``."""

    chunk_overlap: int = Field(default=32, ge=0)
    """Tokens of whole sentences repeated between consecutive chunks of running text."""

    top_k: int = Field(default=5, ge=1, le=50)
    """Passages retrieved per query when a request does not say."""

    candidates: int = Field(default=50, ge=1, le=1000)
    """Candidates each retriever (BM25, vectors) hands to rank fusion."""

    rrf_k: int = Field(default=60, ge=1)
    """Reciprocal rank fusion constant: score = sum 1 / (rrf_k + rank)."""

    snippet_chars: int = Field(default=240, ge=20)
    """Characters of a passage shown in a citation's ``snippet``."""

    max_upload_mb: float = Field(default=50.0, gt=0)
    """Largest upload (all files of one request) accepted by ``POST
    /v1/knowledge/{kb}/documents``; the body is streamed and refused with 413 past it."""

    parse_cpu_s: int = Field(default=30, ge=1, le=3600)
    """CPU seconds one document's parser may use (it runs in a child process)."""

    parse_memory_mb: int = Field(default=1024, ge=128)
    """Address space of that child process, in MiB."""

    max_unzipped_mb: float = Field(default=200.0, gt=0)
    """Largest total uncompressed size of an Office file (DOCX, XLSX are zip archives)."""

    max_zip_ratio: float = Field(default=100.0, ge=1)
    """Largest uncompressed/compressed size ratio of an Office file's archive or a member."""

    max_parts: int = Field(default=200_000, ge=1)
    """Most paragraphs, table cells, spreadsheet cells or PDF pages read from one document."""

    keep_originals: bool = True
    """Keep uploaded files so that holders of ``kb:<name>:download`` can fetch them."""

    allow_public_urls: bool = False
    """Let sync sources fetch URLs outside private and loopback networks."""

    allow_metadata_urls: bool = False
    """Let sync sources fetch link-local and cloud metadata addresses (169.254.0.0/16,
    fe80::/10, 100.100.100.200, fd00:ec2::254), even with ``allow_public_urls``."""

    fetch_timeout_s: float = Field(default=30.0, gt=0)
    """Timeout of one URL fetch during a sync."""

    embed_batch: int = Field(default=32, ge=1, le=4096)
    """Chunks embedded per call during an ingest; a background job yields to serving
    and can be cancelled between two such batches."""

    ingest_nice: int = Field(default=10, ge=0, le=19)
    """How much a background job's thread lowers its OS priority (``nice``), so that
    embedding a large ingest takes only the CPU that serving leaves. 0: same as serving."""

    ingest_pause_ms: float = Field(default=0.0, ge=0.0, le=10_000.0)
    """Pause of a background job after each embedded batch, beyond the priority."""

    ingest_yield_max_s: float = Field(default=2.0, ge=0.0, le=600.0)
    """Between two batches a background job waits while a model request is waiting for
    its first token (retrieval, masking, prefill), so an ingest does not lengthen chat
    TTFT; it waits at most this long at a time, so a server never idle still ingests,
    one batch per wait. 0: never wait."""

    vector_store: Literal["flat", "qdrant"] = "flat"
    """``flat``: exact search in files under ``data_dir`` (one machine, up to a few
    hundred thousand chunks). ``qdrant``: a Qdrant server or cluster (``qdrant_url``)."""

    qdrant_url: str | None = None
    """Qdrant server for ``vector_store: qdrant``, e.g. ``http://qdrant:6333``."""

    qdrant_api_key: SecretStr | None = None
    """API key of that Qdrant server, if it requires one."""

    pii_policy: str | None = None
    """Privacy policy that masks personal data in documents before they are chunked and
    indexed (e.g. one with ``default_operator: replace``). None: index documents as they are;
    originals kept for download stay unmasked either way."""

    @model_validator(mode="after")
    def _check(self) -> KnowledgeSettings:
        if self.vector_store == "qdrant" and not self.qdrant_url:
            raise ValueError("knowledge.vector_store='qdrant' needs knowledge.qdrant_url")
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(
                f"knowledge.chunk_overlap={self.chunk_overlap} must be smaller than "
                f"knowledge.chunk_tokens={self.chunk_tokens}"
            )
        if self.candidates < self.top_k:
            raise ValueError(
                f"knowledge.candidates={self.candidates} must be at least "
                f"knowledge.top_k={self.top_k}"
            )
        return self

    def catalog_url(self) -> str:
        """The catalog's SQLAlchemy URL, defaulting to SQLite in ``data_dir``."""
        return self.database_url or f"sqlite:///{self.data_dir / 'catalog.db'}"
