"""Sync sources: registered folders, files or URLs, and one sync run of each.

``sources.py`` lists a source's documents; this module registers sources, brings a
collection in line with one (add new, re-index changed, remove deleted), keeps the
sync reports and says when a cron-scheduled source is due. ``sync.py``'s
``SyncScheduler`` is the loop that calls ``KnowledgeService.run_due``, which runs due
sources as background jobs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.orm import Session

from luodi.config.knowledge import KnowledgeSettings
from luodi.errors import InvalidRequestError, NotFoundError
from luodi.knowledge.catalog import (
    DocumentRow,
    SourceRow,
    SyncReportRow,
    collection_scope,
    require_collection,
)
from luodi.knowledge.erasure import Erasure
from luodi.knowledge.loaders import LOADERS
from luodi.knowledge.sources import SourceListingError, iter_source
from luodi.knowledge.stores import Stores
from luodi.knowledge.types import AuditSink, IngestReport, Progress, Tracker

__all__ = ["Ingest", "SourceSync"]


class Ingest(Protocol):
    """``KnowledgeService.ingest``: how a sync adds and re-indexes documents."""

    def __call__(
        self,
        collection: str,
        files: Sequence[tuple[str, bytes]],
        *,
        access: Sequence[str],
        meta: Mapping[str, str] | None,
        source_id: str | None,
        progress: Progress | None,
        owner: str | None,
        tracker: Tracker | None = None,
    ) -> IngestReport: ...


class SourceSync:
    """Sources of a knowledge service and their syncs; ``KnowledgeService`` delegates to it.

    Args:
        settings: the ``knowledge`` section (URL policy and fetch timeout).
        stores: the catalog and the service's write lock.
        ingest: adds and re-indexes a source's files.
        erasure: removes the documents that left a source.
        audit: records each sync; None: only the sync report is kept.
        clock: current time, read at each call.
    """

    def __init__(
        self,
        settings: KnowledgeSettings,
        *,
        stores: Stores,
        ingest: Ingest,
        erasure: Erasure,
        audit: AuditSink | None,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._stores = stores
        self._ingest = ingest
        self._erasure = erasure
        self._audit = audit
        self._clock = clock

    def add_source(
        self,
        collection: str,
        locations: Sequence[str],
        *,
        schedule: str | None = None,
        access: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        owner: str | None = None,
    ) -> str:
        """Register folders, files or local-network URLs to sync; returns the source id.

        ``owner`` is the scope that owns what it syncs (default: the collection's).

        Raises:
            InvalidRequestError: ``schedule`` is not a valid cron expression.
        """
        if schedule is not None and not croniter.is_valid(schedule):
            raise InvalidRequestError(
                f"schedule {schedule!r} is not a cron expression", param="schedule"
            )
        source_id = uuid.uuid4().hex
        with self._stores.lock, Session(self._stores.catalog) as session:
            row = require_collection(session, collection)
            session.add(
                SourceRow(
                    id=source_id,
                    collection=collection,
                    owner=collection_scope(row) if owner is None else owner,
                    locations=list(locations),
                    schedule=schedule,
                    access=list(access),
                    meta=dict(meta or {}),
                    created_at=self._clock(),
                )
            )
            session.commit()
        return source_id

    def sources(self, collection: str | None = None) -> list[SourceRow]:
        """Registered sources (detached rows), of one collection or all."""
        with Session(self._stores.catalog, expire_on_commit=False) as session:
            query = select(SourceRow)
            if collection is not None:
                query = query.where(SourceRow.collection == collection)
            rows = list(session.scalars(query))
            session.expunge_all()
            return rows

    def sync(
        self,
        source_id: str,
        *,
        trigger: str = "manual",
        progress: Progress | None = None,
        tracker: Tracker | None = None,
    ) -> IngestReport:
        """Bring a source's documents up to date: add new, re-index changed, remove deleted.

        Unchanged documents (same content hash) are not re-chunked or re-embedded. When a
        location cannot be listed, nothing is deleted and the failure is reported.
        ``tracker`` (a background job) follows it file by file and chunk by chunk.
        """
        started = self._clock()
        with Session(self._stores.catalog) as session:
            source = session.get(SourceRow, source_id)
            if source is None:
                raise NotFoundError(f"sync source {source_id!r} not found")
            collection, locations = source.collection, list(source.locations)
            access, meta, owner = list(source.access), dict(source.meta), source.owner
        report = IngestReport()
        seen: set[str] = set()
        listed = True
        try:
            items = list(
                iter_source(
                    locations,
                    LOADERS,
                    allow_public_urls=self._settings.allow_public_urls,
                    allow_metadata_urls=self._settings.allow_metadata_urls,
                    timeout_s=self._settings.fetch_timeout_s,
                )
            )
        except SourceListingError as exc:
            items, listed = [], False
            report.failed["(listing)"] = exc.message
        files: list[tuple[str, bytes]] = []
        for item in items:
            seen.add(item.name)
            try:
                files.append((item.name, item.read()))
            except Exception as exc:  # OSError or any HTTP client error: report, keep going
                report.failed[item.name] = f"{item.name}: {exc}"
        if tracker is not None:
            tracker.files_found(len(files))
        part = self._ingest(
            collection,
            files,
            access=access,
            meta=meta,
            source_id=source_id,
            progress=progress,
            owner=owner,
            tracker=tracker,
        )
        report.added, report.updated, report.unchanged = part.added, part.updated, part.unchanged
        report.failed.update(part.failed)
        report.chunks = part.chunks
        if listed:
            with Session(self._stores.catalog) as session:
                gone = [
                    (d.id, d.name)
                    for d in session.scalars(
                        select(DocumentRow).where(DocumentRow.source_id == source_id)
                    )
                    if d.name not in seen
                ]
            if gone:
                self._erasure.delete(
                    collection, [i for i, _ in gone], actor="sync", reason=f"source {source_id}"
                )
                report.deleted = [n for _, n in gone]
        self._record(source_id, collection, trigger, started, report)
        return report

    def _record(
        self,
        source_id: str,
        collection: str,
        trigger: str,
        started: datetime,
        report: IngestReport,
    ) -> None:
        """Keep the sync report, stamp the source's last sync and audit it."""
        finished = self._clock()
        summary = {
            "added": report.added,
            "updated": report.updated,
            "deleted": report.deleted,
            "failed": report.failed,
            "unchanged": len(report.unchanged),
            "chunks": report.chunks,
        }
        with self._stores.lock, Session(self._stores.catalog) as session:
            session.add(
                SyncReportRow(
                    source_id=source_id,
                    trigger=trigger,
                    started_at=started,
                    finished_at=finished,
                    report=summary,
                )
            )
            row = session.get(SourceRow, source_id)
            assert row is not None
            row.last_sync_at = started
            session.commit()
        if self._audit is not None:
            self._audit.record(
                "kb.sync", f"kb:{collection}", {"source": source_id, "trigger": trigger, **summary}
            )

    def sync_reports(self, source_id: str) -> list[dict[str, Any]]:
        """Reports of a source's syncs, oldest first."""
        with Session(self._stores.catalog) as session:
            rows = session.scalars(
                select(SyncReportRow)
                .where(SyncReportRow.source_id == source_id)
                .order_by(SyncReportRow.id)
            )
            return [{"trigger": r.trigger, "started_at": r.started_at, **r.report} for r in rows]

    def next_sync_at(self, source: SourceRow) -> datetime | None:
        """When a scheduled source is next due (None: on demand only)."""
        if source.schedule is None:
            return None
        base = source.last_sync_at or source.created_at
        if base.tzinfo is None:
            base = base.replace(tzinfo=UTC)
        nxt: datetime = croniter(source.schedule, base).get_next(datetime)
        return nxt
