"""Background jobs: ingests, syncs and re-embeddings that run behind serving, with progress.

``JobRunner`` owns one worker thread. It lowers its own OS priority
(``knowledge.ingest_nice``) before it runs anything, so the parsing, chunking and
embedding of a large ingest take only the CPU that serving leaves; embedding runs
in batches of ``knowledge.embed_batch`` chunks, and after each batch (and before
each document's first) the job gives up the interpreter (``knowledge.ingest_pause_ms``),
waits while serving is busy (``busy``: a request is waiting for its first token; at
most ``knowledge.ingest_yield_max_s`` at a time) and checks whether it was cancelled.
Priority alone does not do it: the chat's retrieval, masking and planning are Python
and would take turns on the interpreter with the ingest's chunking. Jobs run one at a
time, in the order they were submitted.

A job's progress (files and chunks done of the total known so far, documents that
failed, its final report) lives in memory while it runs and in the catalog's
``kb_jobs`` table, written at each state change and at most once a second while it
runs, so another replica or a later process can still answer ``GET .../jobs/{id}``.
A job found ``queued`` or ``running`` with a heartbeat older than
``_LOST_AFTER`` belonged to a process that stopped: it reads as ``failed``.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from luodi.knowledge.catalog import JobRow
from luodi.knowledge.types import IngestReport

__all__ = ["Job", "JobCancelledError", "JobKind", "JobRunner", "JobState", "JobStatus"]

_log = logging.getLogger(__name__)

JobKind = Literal["ingest", "sync", "reembed"]
JobState = Literal["queued", "running", "done", "failed", "cancelled"]
_FINISHED = ("done", "failed", "cancelled")
_PERSIST_EVERY_S = 1.0
_LOST_AFTER = timedelta(minutes=10)
_POLL_S = 0.01


class JobCancelledError(Exception):
    """Raised inside a job's work at its next batch boundary after ``cancel``."""


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A job as clients see it."""

    id: str
    kind: str
    collection: str
    owner: str
    state: str
    files_total: int
    files_done: int
    chunks_total: int
    chunks_done: int
    failed: dict[str, str]
    report: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def report_dict(report: IngestReport) -> dict[str, Any]:
    """An ``IngestReport`` as stored with a job."""
    return {
        "added": report.added,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "deleted": report.deleted,
        "failed": report.failed,
        "chunks": report.chunks,
    }


@dataclass
class Job:
    """One job's live state; also the ``Tracker`` its work reports progress to.

    Counters only grow; ``chunks_total`` grows as documents are chunked, so it is the
    total known so far until every file is done.
    """

    id: str
    kind: JobKind
    collection: str
    owner: str
    files_total: int
    created_at: datetime
    state: JobState = "queued"
    files_done: int = 0
    chunks_total: int = 0
    chunks_done: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    report: dict[str, Any] | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    pause_s: float = 0.0
    on_change: Callable[[Job], None] | None = None
    busy: Callable[[], bool] | None = None
    """Whether serving needs the machine now; the job waits while it does."""
    yield_max_s: float = 0.0
    yielded_s: float = 0.0
    """Time spent waiting for serving so far."""

    # ---- the Tracker protocol (types.py), called from the worker thread -------------

    def files_found(self, count: int) -> None:
        """``count`` more files to process."""
        self.files_total += count
        self._changed()

    def planned(self, chunks: int) -> None:
        """A document was chunked: ``chunks`` more to embed; yield before embedding them."""
        self.chunks_total += chunks
        self._changed()
        self._give_way()

    def embedded(self, chunks: int) -> None:
        """A batch was embedded; yield to serving, stop here if cancelled."""
        self.chunks_done += chunks
        self._changed()
        self._give_way()

    def _give_way(self) -> None:
        # sleep(0) still lets a waiting thread take the GIL; a pause gives serving
        # the CPU as well.
        time.sleep(self.pause_s)
        if self.busy is not None and self.yield_max_s > 0:
            start = time.monotonic()
            deadline = start + self.yield_max_s
            while self.busy() and not self.cancel_requested and time.monotonic() < deadline:
                time.sleep(_POLL_S)
            self.yielded_s += time.monotonic() - start
        if self.cancel_requested:
            raise JobCancelledError(self.id)

    def document_done(self, name: str, error: str | None) -> None:
        """A file was indexed, found unchanged, or failed with ``error``."""
        self.files_done += 1
        if error is not None:
            self.failed[name] = error
        self._changed()
        self._give_way()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def status(self) -> JobStatus:
        """A snapshot of this job."""
        return JobStatus(
            self.id,
            self.kind,
            self.collection,
            self.owner,
            self.state,
            self.files_total,
            self.files_done,
            self.chunks_total,
            self.chunks_done,
            dict(self.failed),
            self.report,
            self.error,
            self.created_at,
            self.started_at,
            self.finished_at,
        )


Work = Callable[[Job], IngestReport]
"""What a job does: runs in the worker thread, reports progress to the ``Job``."""


def _status_of(row: JobRow, now: datetime) -> JobStatus:
    state, error = row.state, row.error
    heartbeat = row.updated_at
    if heartbeat.tzinfo is None:  # SQLite gives naive datetimes back
        heartbeat = heartbeat.replace(tzinfo=now.tzinfo)
    if state not in _FINISHED and now - heartbeat > _LOST_AFTER:
        state, error = "failed", "interrupted: the process running it stopped"
    report = row.report or None
    return JobStatus(
        row.id,
        row.kind,
        row.collection,
        row.owner,
        state,
        row.files_total,
        row.files_done,
        row.chunks_total,
        row.chunks_done,
        dict((report or {}).get("failed", {})),
        report if state == "done" else None,
        error,
        row.created_at,
        row.started_at,
        row.finished_at,
    )


class JobRunner:
    """Runs jobs one at a time in a worker thread of lower OS priority.

    Args:
        catalog: where job rows are kept.
        nice: how much the worker thread lowers its priority (0-19; Linux threads).
        pause_s: the worker's pause after each embedded batch.
        clock: current time.
        busy: whether serving needs the machine now (None: never waits for it).
        yield_max_s: the longest a job waits for serving at a time.
    """

    def __init__(
        self,
        catalog: Engine,
        *,
        nice: int,
        pause_s: float,
        clock: Callable[[], datetime],
        busy: Callable[[], bool] | None = None,
        yield_max_s: float = 0.0,
    ) -> None:
        self._catalog = catalog
        self._busy = busy
        self._yield_max_s = yield_max_s
        self._nice = nice
        self._pause_s = pause_s
        self._clock = clock
        self._queue: queue.Queue[tuple[Job, Work] | None] = queue.Queue()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._persisted_at = 0.0

    def submit(
        self, kind: JobKind, collection: str, owner: str, files_total: int, work: Work
    ) -> JobStatus:
        """Queue ``work``; returns the job as it starts: ``queued``."""
        job = Job(
            uuid.uuid4().hex,
            kind,
            collection,
            owner,
            files_total,
            self._clock(),
            pause_s=self._pause_s,
            on_change=self._progress,
            busy=self._busy,
            yield_max_s=self._yield_max_s,
        )
        with Session(self._catalog) as session:
            session.add(
                JobRow(
                    id=job.id,
                    kind=kind,
                    collection=collection,
                    owner=owner,
                    state="queued",
                    files_total=files_total,
                    report={},
                    created_at=job.created_at,
                    updated_at=job.created_at,
                )
            )
            session.commit()
        with self._lock:
            self._jobs[job.id] = job
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="luodi-kb-jobs", daemon=True)
                self._thread.start()
        self._queue.put((job, work))
        return job.status()

    def status(self, job_id: str) -> JobStatus | None:
        """The job, live from this process or as last stored; None: no such job."""
        live = self._jobs.get(job_id)
        if live is not None:
            return live.status()
        with Session(self._catalog) as session:
            row = session.get(JobRow, job_id)
            return None if row is None else _status_of(row, self._clock())

    def list(self, collection: str) -> list[JobStatus]:
        """Jobs of a collection, newest first."""
        with Session(self._catalog) as session:
            rows = session.scalars(
                select(JobRow)
                .where(JobRow.collection == collection)
                .order_by(JobRow.created_at.desc())
            ).all()
            ids = [r.id for r in rows]
            stored = {r.id: _status_of(r, self._clock()) for r in rows}
        out = []
        for job_id in ids:
            live = self._jobs.get(job_id)
            out.append(live.status() if live is not None else stored[job_id])
        return out

    def cancel(self, job_id: str) -> bool:
        """Ask a queued or running job of this process to stop; False: not running here."""
        job = self._jobs.get(job_id)
        if job is None or job.state in _FINISHED:
            return False
        job.cancel_requested = True
        return True

    def wait(self, job_id: str, timeout: float | None = None) -> JobStatus | None:
        """Block until a job of this process finishes (the CLI, tests)."""
        job = self._jobs.get(job_id)
        if job is not None:
            job.done.wait(timeout)
        return self.status(job_id)

    def close(self) -> None:
        """Cancel what is queued or running and stop the worker."""
        with self._lock:
            for job in self._jobs.values():
                job.cancel_requested = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=30)

    # ---- the worker -----------------------------------------------------------------

    def _run(self) -> None:
        self._lower_priority()
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, work = item
            if job.cancel_requested:
                self._finish(job, "cancelled", None)
                continue
            job.state, job.started_at = "running", self._clock()
            self._store(job)
            try:
                report = work(job)
            except JobCancelledError:
                self._finish(job, "cancelled", None)
            except Exception as exc:  # a job's failure is its result; the worker goes on
                _log.exception("knowledge job %s failed", job.id)
                self._finish(job, "failed", f"{type(exc).__name__}: {exc}")
            else:
                job.report = report_dict(report)
                job.failed.update(report.failed)
                self._finish(job, "done", None)

    def _lower_priority(self) -> None:
        if not self._nice or not hasattr(os, "setpriority"):
            return
        try:
            # On Linux each thread has its own nice value; this one is the worker's.
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + self._nice)
        except OSError as exc:
            _log.warning("could not lower the knowledge job thread's priority: %s", exc)

    def _finish(self, job: Job, state: JobState, error: str | None) -> None:
        job.state, job.error, job.finished_at = state, error, self._clock()
        self._store(job)
        job.done.set()
        with self._lock:
            # Finished jobs are read from the catalog from now on.
            self._jobs.pop(job.id, None)

    def _progress(self, job: Job) -> None:
        now = time.monotonic()
        if now - self._persisted_at >= _PERSIST_EVERY_S:
            self._persisted_at = now
            self._store(job)

    def _store(self, job: Job) -> None:
        now = self._clock()
        with Session(self._catalog) as session:
            row = session.get(JobRow, job.id)
            if row is None:
                return
            row.state, row.error = job.state, job.error
            row.files_total, row.files_done, row.chunks_total, row.chunks_done = (
                job.files_total,
                job.files_done,
                job.chunks_total,
                job.chunks_done,
            )
            row.report = job.report if job.report is not None else {"failed": dict(job.failed)}
            row.started_at, row.finished_at, row.updated_at = job.started_at, job.finished_at, now
            waiting = [j.id for j in list(self._jobs.values()) if j.state == "queued"]
            if waiting:
                # The heartbeat of jobs still queued here: they are not lost.
                session.execute(update(JobRow).where(JobRow.id.in_(waiting)).values(updated_at=now))
            session.commit()
