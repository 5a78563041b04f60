"""Indexes of chunks: lexical (BM25) and dense (vector store)."""

from luodi.knowledge.index.bm25 import BM25Index, Segmenter
from luodi.knowledge.index.vector_store import FlatVectorStore, VectorStore

__all__ = ["BM25Index", "FlatVectorStore", "Segmenter", "VectorStore"]
