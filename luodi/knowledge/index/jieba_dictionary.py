"""One jieba dictionary per process, shared by luodi's Chinese tokenizers.

Loading jieba's dictionary takes about a second and tens of MB; the knowledge bases'
BM25 segmenter and the support app's lexical index used to load one each (a
knowledge service per instance). This tokenizer is luodi's own: jieba's global one,
which applications tune with ``jieba.add_word``, is never touched.
"""

from __future__ import annotations

import jieba

__all__ = ["TOKENIZER"]

TOKENIZER = jieba.Tokenizer()
"""Loads its dictionary at the first cut, or at ``initialize()`` (thread-safe)."""
