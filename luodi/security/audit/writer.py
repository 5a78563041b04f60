"""The audit writer: group commit of hash-chained records.

Trade-off chosen: ``audit()`` waits for its record's commit (``durable_ack``), and
records arriving while a commit runs are committed together in the next one. At low
load a record costs one small transaction; under load many records share it, so the
per-request cost falls as concurrency rises. A commit is durable against a crash of
the process (SQLite WAL with ``synchronous=NORMAL``, PostgreSQL's default
``synchronous_commit``), and against power loss with ``synchronous=FULL``, at one
fsync per batch. Nothing is acknowledged before its commit, so a crash loses no
acknowledged record; unacknowledged ones in the queue are lost.

Appending takes the chain-head row lock (``UPDATE ... SET seq = seq``), so several
replicas can share one chain in PostgreSQL or one SQLite file.

With a ``ChainKey`` every record's hash is its HMAC and the head row carries a MAC
of (seq, hash). The first batch written under a key that the head does not name
inserts a key anchor in the same transaction: the records before it stay a legacy
(unkeyed) segment, pinned by the anchor's MAC of the hash it continues from.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, literal_column, update

from luodi.config.security import AuditSettings
from luodi.errors import ServiceUnavailableError
from luodi.security.audit.chain import event_fields, record_hash
from luodi.security.audit.chain_key import ChainKey
from luodi.security.audit.event import AuditEvent
from luodi.storage import AuditChainHeadRow, AuditKeyAnchorRow, AuditRecordRow, Database

__all__ = ["AuditWriter"]

_log = logging.getLogger(__name__)
_HEAD = cast(Table, AuditChainHeadRow.__table__)
_CHECKPOINT_EVERY = 1000  # records between SQLite WAL checkpoints
_RECORDS = cast(Table, AuditRecordRow.__table__)
_ANCHORS = cast(Table, AuditKeyAnchorRow.__table__)


@dataclass(slots=True)
class _Pending:
    fields: dict[str, Any]
    done: asyncio.Future[int] | None = field(default=None)


class AuditWriter:
    """Queues audit events and appends them to the chain in batches."""

    def __init__(self, db: Database, settings: AuditSettings, key: ChainKey | None = None) -> None:
        self._db = db
        self._settings = settings
        self._key = key
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue(settings.queue_limit)
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._conn: Any = None
        self._since_checkpoint = 0
        self._checkpoint_task: asyncio.Future[None] | None = None
        # A SQLite commit without fsync takes tens of microseconds: cheaper on the
        # event loop than a thread hop and the GIL hand-offs it costs under load.
        self._inline = db.is_sqlite and db.settings.sqlite_synchronous == "NORMAL"
        self._insert: tuple[str, tuple[str, ...] | None] = ("", None)
        self._set_head: tuple[str, tuple[str, ...] | None] = ("", None)
        self._anchor: tuple[str, tuple[str, ...] | None] = ("", None)

    def start(self) -> None:
        """Start the background commit loop on the running event loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="luodi-audit-writer")

    async def write(self, event: AuditEvent) -> int | None:
        """Queue one record; with ``durable_ack`` wait until it is committed.

        Returns:
            The record's sequence number when acknowledged durably, else ``None``.

        Raises:
            ServiceUnavailableError: The writer is closed or the commit failed
                (the request must then be treated as not audited).
        """
        if self._closed:
            raise ServiceUnavailableError("audit log is closed")
        fields = event_fields(event, store_content=self._settings.store_content)
        if not self._settings.durable_ack:
            await self._queue.put(_Pending(fields))
            return None
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(fields, done))
        return await done

    async def close(self) -> None:
        """Commit everything queued, then stop."""
        if self._closed:
            return
        self._closed = True
        await self._queue.put(None)
        if self._task is not None:
            await self._task
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            if self._settings.flush_interval_ms > 0:
                await asyncio.sleep(self._settings.flush_interval_ms / 1000)
            while len(batch) < self._settings.max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                fields = [p.fields for p in batch]
                if self._inline:
                    seqs = self._commit(fields)
                else:
                    seqs = await asyncio.to_thread(self._commit, fields)
            except Exception as exc:  # any database failure fails these records closed
                _log.error("audit commit of %d records failed: %s", len(batch), exc)
                for pending in batch:
                    if pending.done is not None and not pending.done.done():
                        pending.done.set_exception(
                            ServiceUnavailableError(f"audit log write failed: {exc}")
                        )
                continue
            for pending, seq in zip(batch, seqs, strict=True):
                if pending.done is not None and not pending.done.done():
                    pending.done.set_result(seq)
            self._maybe_checkpoint(len(batch))
        if self._checkpoint_task is not None:
            await self._checkpoint_task

    def _maybe_checkpoint(self, written: int) -> None:
        """Fold the SQLite WAL back into the database off the commit path.

        ``Database`` turns SQLite's automatic checkpoint off, because it would run
        inside a commit and stall that batch's requests for an fsync or two.
        """
        if not self._db.is_sqlite:
            return
        self._since_checkpoint += written
        busy = self._checkpoint_task is not None and not self._checkpoint_task.done()
        if self._since_checkpoint >= _CHECKPOINT_EVERY and not busy:
            self._since_checkpoint = 0
            self._checkpoint_task = asyncio.create_task(asyncio.to_thread(self._checkpoint))

    def _checkpoint(self) -> None:
        conn = self._db.engine.raw_connection()
        try:
            conn.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def _prepare(self) -> None:
        dialect = self._db.engine.dialect
        columns = [c.key for c in _RECORDS.columns]

        def compiled(stmt: Any) -> tuple[str, tuple[str, ...] | None]:
            sql = stmt.compile(dialect=dialect)
            return str(sql), tuple(sql.positiontup) if dialect.positional else None

        self._insert = compiled(insert(_RECORDS).values({c: bindparam(c) for c in columns}))
        self._set_head = compiled(
            update(_HEAD)
            .where(_HEAD.c.id == literal_column("1"))
            .values(
                seq=bindparam("new_seq"),
                hash=bindparam("new_hash"),
                key_id=bindparam("new_key_id"),
                mac=bindparam("new_mac"),
            )
        )
        self._anchor = compiled(
            insert(_ANCHORS).values(
                {c.key: bindparam(c.key) for c in _ANCHORS.columns if c.key != "id"}
            )
        )

    @staticmethod
    def _params(
        statement: tuple[str, tuple[str, ...] | None], values: dict[str, Any]
    ) -> tuple[Any, ...] | dict[str, Any]:
        order = statement[1]
        return tuple(values[name] for name in order) if order is not None else values

    def _commit(self, batch: list[dict[str, Any]]) -> list[int]:
        """Append a batch in one transaction on the writer's own DBAPI connection.

        Plain DBAPI calls with statements compiled once: this path runs per batch,
        and SQLAlchemy's per-statement overhead would dominate a small commit.
        """
        if self._conn is None:
            self._prepare()
            self._conn = self._db.engine.raw_connection()
        conn = self._conn
        try:
            cursor = conn.cursor()
            # Taking the head's row lock first serialises appenders across replicas.
            cursor.execute("UPDATE audit_chain_head SET seq = seq WHERE id = 1")
            cursor.execute("SELECT seq, hash, key_id FROM audit_chain_head WHERE id = 1")
            seq, prev, head_key = cursor.fetchone()
            key = self._key
            if key is not None and head_key != key.key_id:
                # The first records under this key: anchor the chain so far.
                anchor: dict[str, Any] = {
                    "after_seq": seq,
                    "after_hash": prev,
                    "key_id": key.key_id,
                }
                anchor["created_us"] = time.time_ns() // 1000
                anchor["mac"] = key.mac("anchor", anchor)
                cursor.execute(self._anchor[0], self._params(self._anchor, anchor))
            rows: list[dict[str, Any]] = []
            for fields in batch:
                seq += 1
                row = {**fields, "seq": seq, "prev_hash": prev}
                row["hash"] = prev = record_hash(row, key)
                rows.append(row)
            cursor.executemany(self._insert[0], [self._params(self._insert, r) for r in rows])
            head = {
                "new_seq": seq,
                "new_hash": prev,
                "new_key_id": key.key_id if key else None,
                "new_mac": key.mac("head", {"seq": seq, "hash": prev}) if key else None,
            }
            cursor.execute(self._set_head[0], self._params(self._set_head, head))
            cursor.close()
            conn.commit()
        except BaseException:
            self._conn = None
            try:
                conn.rollback()
            finally:
                conn.invalidate()
            raise
        return [row["seq"] for row in rows]
