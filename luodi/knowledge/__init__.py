"""Knowledge bases: ingest documents, hybrid retrieval with citations, sync and erasure."""

from luodi.knowledge.chunking import Chunker, split_sentences
from luodi.knowledge.grounding import inject_context, last_user_text
from luodi.knowledge.index.bm25 import BM25Index, Segmenter
from luodi.knowledge.index.vector_store import FlatVectorStore, VectorStore
from luodi.knowledge.loaders import LOADERS, DocumentLoadError, load_document
from luodi.knowledge.retrieval import HybridRetriever, Reranker, rrf_fuse
from luodi.knowledge.service import (
    AuditSink,
    CollectionInfo,
    DocumentInfo,
    KnowledgeService,
    Progress,
)
from luodi.knowledge.sources import SourceListingError
from luodi.knowledge.sync import SyncScheduler
from luodi.knowledge.types import Block, Chunk, Citation, Filter, Hit, IngestReport, Principal

__all__ = [
    "LOADERS",
    "AuditSink",
    "BM25Index",
    "Block",
    "Chunk",
    "Chunker",
    "Citation",
    "CollectionInfo",
    "DocumentInfo",
    "DocumentLoadError",
    "Filter",
    "FlatVectorStore",
    "Hit",
    "HybridRetriever",
    "IngestReport",
    "KnowledgeService",
    "Principal",
    "Progress",
    "Reranker",
    "Segmenter",
    "SourceListingError",
    "SyncScheduler",
    "VectorStore",
    "inject_context",
    "last_user_text",
    "load_document",
    "rrf_fuse",
    "split_sentences",
]
