"""Erased documents leave no chunk, vector, text or original behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kb_factories import ListAudit, fixture_files

from luodi.knowledge import KnowledgeService

Make = Callable[..., KnowledgeService]
SECRET = "Customer Zhang Wei, account 6222 0000 1111, complained about a late transfer."


def _setup(make_service: Make) -> KnowledgeService:
    service = make_service()
    service.create_collection("tickets")
    service.ingest("tickets", [("t1.txt", SECRET.encode())], meta={"subject": "u-42"})
    service.ingest(
        "tickets",
        [("t2.txt", b"Another customer asked about transfer fees.")],
        meta={"subject": "u-7"},
    )
    return service


def test_erasure_by_subject_removes_every_trace(
    make_service: Make, tmp_path: Path, audit: ListAudit
) -> None:
    service = _setup(make_service)
    assert any(
        "Zhang Wei" in h.text for h in service.search(["tickets"], "Zhang Wei late transfer", 5)
    )
    assert service.erase("subject", "u-42", actor="dpo") == 1
    for query in ("Zhang Wei late transfer", "6222 0000 1111", "complained"):
        assert all("Zhang Wei" not in h.text for h in service.search(["tickets"], query, 10))
    assert [d.name for d in service.list_documents("tickets")] == ["t2.txt"]
    service.close()
    # Nothing on disk still holds the text or the vectors, even after a restart.
    reopened = make_service()
    assert all("Zhang Wei" not in h.text for h in reopened.search(["tickets"], "Zhang Wei", 10))
    for path in (tmp_path / "kb").rglob("*"):
        if path.is_file():
            assert b"Zhang Wei" not in path.read_bytes(), path
    assert audit.records[-1][0] == "kb.erase"
    assert audit.records[-1][2]["actor"] == "dpo"


def test_delete_by_document_id_removes_it_from_both_indexes(make_service: Make) -> None:
    service = _setup(make_service)
    doc = next(d for d in service.list_documents("tickets") if d.name == "t1.txt")
    service.delete_document("tickets", doc.id)
    hits = service.search(["tickets"], SECRET, 10)
    assert {h.document for h in hits} == {"t2.txt"}


def test_erased_text_does_not_linger_in_the_sqlite_wal(make_service: Make, tmp_path: Path) -> None:
    service = _setup(make_service)
    service.list_documents("tickets")  # the catalog stays open: its WAL is not removed
    assert service.erase("subject", "u-42", actor="dpo") == 1
    for path in (tmp_path / "kb").glob("catalog.db*"):
        assert b"Zhang Wei" not in path.read_bytes(), path
    service.close()


def test_the_saved_bm25_index_is_reused_and_an_erasure_removes_it(
    make_service: Callable[..., KnowledgeService], tmp_path: Path
) -> None:
    service = make_service()
    service.create_collection("kb")
    service.ingest("kb", [("secret.txt", "Zyxwvut account of 张三丰".encode())], meta={"s": "u-1"})
    service.ingest("kb", fixture_files())
    service.close()
    saved = tmp_path / "kb" / "bm25" / "kb.npz"
    assert "张三丰" in saved.with_suffix(".json").read_text()
    reopened = make_service()
    assert reopened.search(["kb"], "zyxwvut", 1)[0].document == "secret.txt"
    assert reopened.erase("s", "u-1") == 1
    assert not saved.exists() and not saved.with_suffix(".json").exists()
    assert reopened.search(["kb"], "zyxwvut", 5) == [] or all(
        h.document != "secret.txt" for h in reopened.search(["kb"], "zyxwvut", 5)
    )
    reopened.close()
    assert "张三丰" not in saved.with_suffix(".json").read_text()


def test_a_saved_bm25_index_that_no_longer_matches_the_catalog_is_rebuilt(
    make_service: Callable[..., KnowledgeService], tmp_path: Path
) -> None:
    service = make_service()
    service.create_collection("kb")
    service.ingest("kb", fixture_files()[:1])
    service.close()
    saved = tmp_path / "kb" / "bm25" / "kb.npz"
    old = saved.read_bytes(), saved.with_suffix(".json").read_bytes()
    later = make_service()
    later.ingest("kb", [("late.txt", b"Quasar lending rules for late documents.")])
    later.close()
    saved.write_bytes(old[0])  # as if the process that ingested late.txt had crashed
    saved.with_suffix(".json").write_bytes(old[1])
    again = make_service()
    assert again.search(["kb"], "quasar lending", 1)[0].document == "late.txt"
