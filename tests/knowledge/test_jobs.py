"""Background jobs: ingest, sync and re-embedding behind serving, with progress."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kb_factories import FakePrincipal, fixture_files
from sqlalchemy.orm import Session

from luodi.errors import NotFoundError, ServiceUnavailableError
from luodi.knowledge import KnowledgeService
from luodi.knowledge.access import Caller
from luodi.knowledge.catalog import JobRow
from luodi.knowledge.jobs import JobRunner, JobStatus
from luodi.knowledge.types import IngestReport

Make = Callable[..., KnowledgeService]


def wait_until(check: Callable[[], bool], timeout: float = 120.0) -> None:
    """Poll a condition another thread makes true (the job worker has no awaitable)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def many_files(n: int) -> list[tuple[str, bytes]]:
    body = " ".join(f"Clause {i} of the savings account terms explains fees." for i in range(60))
    return [(f"terms-{k}.txt", f"Terms version {k}. {body}".encode()) for k in range(n)]


def test_background_ingest_ends_with_the_synchronous_report_and_is_searchable(
    make_service: Make,
) -> None:
    service = make_service()
    service.create_collection("faq")
    job = service.submit_ingest("faq", [*fixture_files(), ("bad.pdf", b"garbage")])
    assert job.state == "queued" and job.files_total == len(fixture_files()) + 1
    done = service.wait_job(job.id, timeout=300)
    assert done is not None and done.state == "done"
    assert done.files_done == done.files_total
    assert done.chunks_done == done.chunks_total == done.report["chunks"] > 0  # type: ignore[index]
    assert sorted(done.report["added"]) == sorted(n for n, _ in fixture_files())  # type: ignore[index]
    assert list(done.failed) == ["bad.pdf"]
    assert service.search(["faq"], "营业时间", 1)[0].document == "faq_cn.md"
    service.close()
    # The job outlives the process that ran it.
    again = make_service()
    assert again.job("faq", job.id).state == "done"
    assert [j.id for j in again.jobs("faq")] == [job.id]


def test_a_cancelled_job_stops_between_batches_and_keeps_whole_documents(
    make_service: Make,
) -> None:
    service = make_service(embed_batch=2)
    service.create_collection("kb")
    job = service.submit_ingest("kb", many_files(12))
    wait_until(lambda: service.job("kb", job.id).chunks_done > 0)
    assert service.cancel_job("kb", job.id).state in ("running", "cancelled")
    final = service.wait_job(job.id, timeout=120)
    assert final is not None and final.state == "cancelled"
    assert 0 < final.chunks_done < final.chunks_total or final.files_done < 12
    docs = service.list_documents("kb")
    assert len(docs) < 12
    assert all(d.chunks > 0 for d in docs)  # a document is indexed whole or not at all
    hits = service.search(["kb"], "savings account fees", 50)
    assert {h.document for h in hits} <= {d.name for d in docs}


def test_progress_is_monotonic_and_reaches_the_totals(make_service: Make) -> None:
    service = make_service(embed_batch=4)
    service.create_collection("kb")
    job = service.submit_ingest("kb", many_files(4))
    seen: list[JobStatus] = []

    def finished() -> bool:
        seen.append(service.job("kb", job.id))
        return seen[-1].state == "done"

    wait_until(finished)
    done = [s.chunks_done for s in seen]
    assert done == sorted(done) and done[-1] == seen[-1].chunks_total > 4
    assert any(s.state == "running" for s in seen)


def test_the_worker_thread_runs_at_lower_os_priority(tmp_path: Path, make_service: Make) -> None:
    service = make_service()  # only for its migrated catalog
    runner = JobRunner(service._engine, nice=7, pause_s=0.0, clock=lambda: datetime.now(UTC))
    seen: list[int] = []

    def work(_job: object) -> IngestReport:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return IngestReport()

    status = runner.submit("ingest", "kb", "", 0, work)  # type: ignore[arg-type]
    runner.wait(status.id, timeout=30)
    runner.close()
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen == [min(19, base + 7)]


def test_a_job_waits_while_serving_is_busy_and_goes_on_when_it_is_not(
    make_service: Make, tmp_path: Path
) -> None:
    serving = threading.Event()  # set: a chat is waiting for its first token
    serving.set()
    service = make_service()
    service.close()
    service = KnowledgeService(
        service.settings.model_copy(update={"embed_batch": 2, "ingest_yield_max_s": 600.0}),
        service.embedder,
        serving_busy=serving.is_set,
    )
    service.create_collection("kb")
    job = service.submit_ingest("kb", many_files(2))
    wait_until(lambda: service.job("kb", job.id).chunks_total > 0)
    time.sleep(0.5)
    held = service.job("kb", job.id)
    assert held.state == "running" and held.chunks_done == 0  # nothing embedded while busy
    serving.clear()
    done = service.wait_job(job.id, timeout=120)
    assert done is not None and done.state == "done" and done.chunks_done == done.chunks_total
    service.close()


def always_busy_runner(service: KnowledgeService, yield_max_s: float) -> JobRunner:
    """A runner whose serving never goes idle."""
    return JobRunner(
        service._engine,
        nice=0,
        pause_s=0.0,
        clock=lambda: datetime.now(UTC),
        busy=lambda: True,
        yield_max_s=yield_max_s,
    )


def test_a_server_never_idle_still_ingests_one_batch_per_wait(make_service: Make) -> None:
    runner = always_busy_runner(make_service(), 0.05)
    waited: list[float] = []

    def work(job: Any) -> IngestReport:
        for _ in range(4):
            job.planned(1)
            job.embedded(1)
        waited.append(job.yielded_s)
        return IngestReport()

    status = runner.submit("ingest", "kb", "", 0, work)
    final = runner.wait(status.id, timeout=30)
    runner.close()
    assert final is not None and final.state == "done" and final.chunks_done == 4
    assert 8 * 0.05 <= waited[0] < 5.0  # each of the 8 yield points waited its bound, no more


def test_a_cancelled_job_stops_waiting_for_serving(make_service: Make) -> None:
    runner = always_busy_runner(make_service(), 600.0)

    def work(job: Any) -> IngestReport:
        job.planned(1)
        return IngestReport()

    status = runner.submit("ingest", "kb", "", 0, work)
    wait_until(lambda: runner.status(status.id).state == "running")  # type: ignore[union-attr]
    runner.cancel(status.id)
    final = runner.wait(status.id, timeout=10)
    runner.close()
    assert final is not None and final.state == "cancelled"


def test_a_job_whose_process_stopped_reads_as_failed(make_service: Make) -> None:
    service = make_service()
    service.create_collection("kb")
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    with Session(service._engine) as session:
        session.add(
            JobRow(
                id="lost",
                kind="ingest",
                collection="kb",
                owner="",
                state="running",
                files_total=3,
                report={},
                created_at=long_ago,
                updated_at=long_ago,
            )
        )
        session.commit()
    lost = service.job("kb", "lost")
    assert lost.state == "failed" and "interrupted" in (lost.error or "")


def test_another_tenant_does_not_see_a_job(make_service: Make) -> None:
    service = make_service()
    service.create_collection("kb", shared=True)
    acme = Caller("acme", user="alice", may=lambda p: not p.endswith(":manage"))
    job = service.submit_ingest("kb", fixture_files()[:1], caller=acme)
    service.wait_job(job.id, timeout=120)
    assert service.job("kb", job.id, acme).state == "done"
    globex = Caller("globex", user="bob", may=lambda p: not p.endswith(":manage"))
    with pytest.raises(NotFoundError):
        service.job("kb", job.id, globex)
    assert service.jobs("kb", globex) == []
    assert service.jobs("kb", FakePrincipal("acme", ["developer"]))[0].id == job.id


def test_sync_runs_as_a_job_that_learns_its_files_from_the_listing(
    make_service: Make, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, data in fixture_files():
        (folder / name).write_bytes(data)
    service = make_service()
    service.create_collection("kb")
    source = service.add_source("kb", [str(folder)])
    job = service.submit_sync(source)
    done = service.wait_job(job.id, timeout=300)
    assert done is not None and done.state == "done"
    assert done.files_total == done.files_done == len(fixture_files())
    assert len(service.sync_reports(source)) == 1


def test_a_collection_embedded_by_another_model_is_refused_until_reembedded(
    make_service: Make, embedder: object
) -> None:
    service = make_service()
    service.create_collection("faq")
    service.ingest("faq", fixture_files())
    before = [h.chunk_id for h in service.search(["faq"], "营业时间是几点到几点？", 3)]
    service.close()
    renamed = make_service()
    renamed.embedder = _Renamed(renamed.embedder)  # the same weights under a new name
    with pytest.raises(ServiceUnavailableError, match="luodi kb reembed faq") as refused:
        renamed.search(["faq"], "营业时间", 3)
    assert refused.value.code == "kb_needs_reembed"
    with pytest.raises(ServiceUnavailableError):
        renamed.ingest("faq", [("new.txt", b"new text")])
    job = renamed.submit_reembed("faq")
    done = renamed.wait_job(job.id, timeout=300)
    assert done is not None and done.state == "done" and done.chunks_done > 0
    assert [h.chunk_id for h in renamed.search(["faq"], "营业时间是几点到几点？", 3)] == before


class _Renamed:
    """An embedder that is another one under another name."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    @property
    def name(self) -> str:
        return "renamed-model"
