"""Ingestion's two stages: the next document is prepared while one is embedded, and a
batch still behaves as if its documents went in one by one."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from luodi.config.knowledge import KnowledgeSettings
from luodi.engine.embeddings import MiniLMEmbedder
from luodi.knowledge import KnowledgeService
from luodi.knowledge.index.jieba_dictionary import TOKENIZER

FIRST = "# Opening hours\n\nThe branch opens at nine and closes at five.\n"
SECOND = "# Parking\n\nVisitors park in the basement garage beside the lift.\n"
THIRD = "# Lockers\n\nSafe deposit boxes are rented at the counter on the first floor.\n"


class StallingEmbedder:
    """The real MiniLM, whose first call waits until the next document has been parsed."""

    def __init__(self, inner: MiniLMEmbedder, parsed: threading.Event) -> None:
        self._inner = inner
        self._parsed = parsed
        self.waited: list[bool] = []
        self.name, self.dim = inner.name, inner.dim

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._inner.count_tokens(texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not self.waited:  # the first document's vectors, before its write
            self.waited.append(self._parsed.wait(timeout=30))
        return self._inner.embed(texts)


def _service(
    tmp_path: Path, embedder: object, redact: Callable[[str], str] | None = None
) -> KnowledgeService:
    settings = KnowledgeSettings(data_dir=tmp_path / "kb", keep_originals=False)
    service = KnowledgeService(settings, embedder, redact=redact)  # type: ignore[arg-type]
    service.create_collection("branch")
    return service


def test_the_next_document_is_parsed_while_one_is_embedded(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    parsed = threading.Event()

    def redact(text: str) -> str:  # runs on each parsed block, before chunking
        if "basement" in text:
            parsed.set()
        return text

    stalling = StallingEmbedder(embedder, parsed)
    service = _service(tmp_path, stalling, redact)
    report = service.ingest(
        "branch", [("hours.md", FIRST.encode()), ("parking.md", SECOND.encode())]
    )
    # Had the second document waited for the first's write, the embedder would have
    # waited 30 s for it in vain.
    assert stalling.waited == [True]
    assert report.added == ["hours.md", "parking.md"] and not report.failed
    hits = service.search(["branch"], "where do visitors park", 1)
    assert hits[0].document == "parking.md"
    service.close()


def test_one_name_twice_in_a_batch_is_written_then_replaced_or_kept(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    service = _service(tmp_path, embedder)
    report = service.ingest("branch", [("a.md", FIRST.encode()), ("a.md", SECOND.encode())])
    assert (report.added, report.updated) == (["a.md"], ["a.md"])
    report = service.ingest("branch", [("b.md", THIRD.encode()), ("b.md", THIRD.encode())])
    assert (report.added, report.unchanged) == (["b.md"], ["b.md"])
    docs = {d.name: d for d in service.list_documents("branch")}
    assert sorted(docs) == ["a.md", "b.md"]
    assert docs["a.md"].content_hash == hashlib.sha256(SECOND.encode()).hexdigest()
    service.close()


def test_a_bad_document_in_the_middle_leaves_the_rest_in_order(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    service = _service(tmp_path, embedder)
    seen: list[str] = []
    files = [
        ("hours.md", FIRST.encode()),
        ("broken.pdf", b"%PDF-1.4 this is not a PDF"),
        ("empty.md", b"   \n"),
        ("lockers.md", THIRD.encode()),
    ]
    report = service.ingest("branch", files, progress=seen.append)
    assert seen == ["hours.md", "broken.pdf", "empty.md", "lockers.md"]
    assert report.added == ["hours.md", "lockers.md"]
    assert sorted(report.failed) == ["broken.pdf", "empty.md"]
    assert "no text" in report.failed["empty.md"]
    service.close()


def test_warm_loads_the_dictionary_and_starts_the_parser(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    service = _service(tmp_path, embedder)
    service.warm()
    assert TOKENIZER.initialized
    from multiprocessing import forkserver

    assert forkserver._forkserver._forkserver_pid is not None  # type: ignore[attr-defined]
    service.close()
