"""A source re-syncs incrementally, on demand or on its cron schedule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kb_factories import ListAudit

from luodi.errors import InvalidRequestError
from luodi.knowledge import KnowledgeService

Make = Callable[..., KnowledgeService]


class Counting:
    """Wraps an embedder to count the texts it embeds."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.embedded = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def embed(self, texts: list[str]) -> object:
        self.embedded += len(texts)
        return self._inner.embed(texts)  # type: ignore[attr-defined]


def test_sync_adds_updates_deletes_and_leaves_unchanged_alone(
    make_service: Make, tmp_path: Path, audit: ListAudit
) -> None:
    folder = tmp_path / "products"
    folder.mkdir()
    (folder / "a.txt").write_text("Product A costs 10 yuan.")
    (folder / "b.txt").write_text("Product B costs 20 yuan.")
    (folder / "c.md").write_text("# C\nProduct C costs 30 yuan.")
    service = make_service()
    service.create_collection("products")
    source = service.add_source("products", [str(folder)], schedule="0 3 * * 1")
    first = service.sync(source)
    assert len(first.added) == 3

    (folder / "b.txt").write_text("Product B now costs 25 yuan.")
    (folder / "c.md").unlink()
    (folder / "d.txt").write_text("Product D costs 40 yuan.")
    counting = Counting(service.embedder)
    service.embedder = counting  # type: ignore[assignment]
    service._chunker._count = counting.count_tokens  # type: ignore[attr-defined]
    second = service.sync(source)

    assert [Path(n).name for n in second.added] == ["d.txt"]
    assert [Path(n).name for n in second.updated] == ["b.txt"]
    assert [Path(n).name for n in second.deleted] == ["c.md"]
    assert [Path(n).name for n in second.unchanged] == ["a.txt"]
    assert counting.embedded == 2  # one chunk each for b and d; a was not re-embedded
    texts = " ".join(h.text for h in service.search(["products"], "Product costs", 10))
    assert "25 yuan" in texts and "20 yuan" not in texts and "30 yuan" not in texts
    reports = service.sync_reports(source)
    assert [r["deleted"] for r in reports][1] == ["products/c.md"]  # relative to the root
    assert audit.records[-1][0] == "kb.sync"


def test_missing_source_folder_deletes_nothing(make_service: Make, tmp_path: Path) -> None:
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "a.txt").write_text("Kept while the share is down.")
    service = make_service()
    service.create_collection("kb")
    source = service.add_source("kb", [str(folder)])
    service.sync(source)
    (folder / "a.txt").unlink()
    folder.rmdir()
    report = service.sync(source)
    assert report.deleted == []
    assert "no such file or folder" in report.failed["(listing)"]
    assert len(service.list_documents("kb")) == 1


def test_public_url_source_is_refused_by_default(make_service: Make) -> None:
    service = make_service()
    service.create_collection("kb")
    source = service.add_source("kb", ["http://8.8.8.8/faq.html"])
    report = service.sync(source)
    assert "not on the local network" in report.failed["(listing)"]


def test_scheduled_source_runs_only_when_due(make_service: Make, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("Weekly product list.")
    now = [datetime(2026, 1, 5, 12, 0, tzinfo=UTC)]  # a Monday
    service = make_service()
    service._clock = lambda: now[0]  # type: ignore[attr-defined]
    service.create_collection("kb")
    weekly = service.add_source("kb", [str(tmp_path / "docs")], schedule="0 3 * * 1")
    service.add_source("kb", [str(tmp_path / "docs")])  # on demand only
    assert service.run_due(now[0] + timedelta(days=6)) == {}
    due = service.run_due(now[0] + timedelta(days=7))
    assert list(due) == [weekly]
    assert due[weekly].added == ["docs/a.txt"]


def test_invalid_cron_schedule_is_refused(make_service: Make) -> None:
    service = make_service()
    service.create_collection("kb")
    with pytest.raises(InvalidRequestError, match="not a cron expression"):
        service.add_source("kb", ["/tmp"], schedule="every monday")


def test_symlink_out_of_the_source_root_is_not_followed(make_service: Make, tmp_path: Path) -> None:
    secret = tmp_path / "etc" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("root password is hunter2")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "leak.md").write_text("database password is swordfish")
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "faq.txt").write_text("Opening hours are nine to five.")
    (folder / "linked.txt").symlink_to(secret)
    (folder / "dir").symlink_to(tmp_path / "outside", target_is_directory=True)
    (folder / "same.txt").symlink_to(folder / "faq.txt")  # inside the root: kept
    service = make_service()
    service.create_collection("kb")
    report = service.sync(service.add_source("kb", [str(folder)]))
    assert sorted(report.added) == ["share/faq.txt", "share/same.txt"]
    texts = " ".join(h.text for h in service.search(["kb"], "password hunter2 swordfish", 10))
    assert "hunter2" not in texts and "swordfish" not in texts


@pytest.mark.parametrize("allow_public", [False, True])
@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fe80::1]/x.html",
        "http://100.100.100.200/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/x.html",
    ],
)
def test_metadata_addresses_stay_blocked_even_with_public_urls(
    make_service: Make, url: str, allow_public: bool
) -> None:
    service = make_service(allow_public_urls=allow_public)
    service.create_collection("kb")
    report = service.sync(service.add_source("kb", [url]))
    assert "knowledge.allow_metadata_urls" in report.failed["(listing)"]
