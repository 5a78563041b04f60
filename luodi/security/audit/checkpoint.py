"""External checkpoints of the chain head: made, signed, exported, read back.

A checkpoint is one JSON line naming the head (``seq``, ``hash``) at a time, with a
MAC under the audit key when there is one. Stored where the database's writers
cannot rewrite it (a file on another host, syslog, an object-lock bucket), it lets
``luodi audit verify --checkpoint FILE`` prove that no record up to ``seq`` was
removed or rewritten since, which nothing inside the database can prove: whoever
can write the database can also roll it back to an older, valid state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from luodi.errors import InvalidRequestError, ServiceUnavailableError
from luodi.security.audit.chain_key import ChainKey

__all__ = [
    "Checkpoint",
    "CheckpointExporter",
    "export_checkpoint",
    "make_checkpoint",
    "read_checkpoints",
]

_log = logging.getLogger(__name__)
_FORMAT = "luodi-audit-checkpoint/1"
_MAX_TS_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The chain head at ``ts_us``; ``mac`` is None when the chain has no key."""

    seq: int
    hash: str
    ts_us: int
    key_id: str | None = None
    mac: str | None = None

    @property
    def time(self) -> str:
        """``ts_us`` as ISO 8601 (UTC)."""
        return datetime.fromtimestamp(self.ts_us / 1e6, tz=UTC).isoformat()

    def signed_fields(self) -> dict[str, Any]:
        """What the MAC covers."""
        return {"seq": self.seq, "hash": self.hash, "ts_us": self.ts_us}

    def to_json(self) -> str:
        """One JSON line (without the newline)."""
        body = {"format": _FORMAT, **self.signed_fields(), "time": self.time}
        body |= {"key_id": self.key_id, "mac": self.mac}
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        """Parse one checkpoint object.

        Raises:
            InvalidRequestError: Not a luodi audit checkpoint.
        """
        if data.get("format") != _FORMAT:
            raise InvalidRequestError(
                f"not a luodi audit checkpoint (format {data.get('format')!r})"
            )
        try:
            checkpoint = cls(
                seq=int(data["seq"]),
                hash=str(data["hash"]),
                ts_us=int(data["ts_us"]),
                key_id=data.get("key_id"),
                mac=data.get("mac"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequestError(f"malformed audit checkpoint: {exc}") from exc
        if not (
            checkpoint.seq >= 0
            and 0 <= checkpoint.ts_us <= _MAX_TS_US
            and all(isinstance(v, str | None) for v in (checkpoint.key_id, checkpoint.mac))
        ):
            raise InvalidRequestError("malformed audit checkpoint: field out of range or type")
        return checkpoint


def make_checkpoint(
    seq: int, hash_: str, key: ChainKey | None, *, now_us: int | None = None
) -> Checkpoint:
    """A checkpoint of head (``seq``, ``hash_``), signed with ``key`` if given."""
    ts_us = now_us if now_us is not None else time.time_ns() // 1000
    unsigned = Checkpoint(seq, hash_, ts_us)
    if key is None:
        return unsigned
    return Checkpoint(
        seq, hash_, ts_us, key.key_id, key.mac("checkpoint", unsigned.signed_fields())
    )


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """Every checkpoint in a file of JSON lines (blank lines and ``#`` comments skipped).

    Raises:
        InvalidRequestError: The file cannot be read or a line is not a checkpoint.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidRequestError(f"cannot read checkpoint file {path}: {exc}") from exc
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(f"{path}:{number}: not JSON: {exc}") from exc
        found.append(Checkpoint.from_json(data))
    if not found:
        raise InvalidRequestError(f"{path} holds no checkpoint")
    return found


def export_checkpoint(
    checkpoint: Checkpoint, *, file: Path | None = None, command: str | None = None
) -> None:
    """Append ``checkpoint`` to ``file`` (fsynced) and/or feed it to ``command``'s stdin.

    Raises:
        ServiceUnavailableError: The file cannot be written or the command fails.
    """
    line = checkpoint.to_json() + "\n"
    if file is not None:
        try:
            fd = os.open(Path(file).expanduser(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise ServiceUnavailableError(
                f"cannot append audit checkpoint to {file}: {exc}"
            ) from exc
    if command is not None:
        try:
            done = subprocess.run(
                shlex.split(command),
                input=line.encode(),
                capture_output=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceUnavailableError(f"audit checkpoint command failed to run: {exc}") from exc
        if done.returncode != 0:
            raise ServiceUnavailableError(
                f"audit checkpoint command exited {done.returncode}: "
                f"{done.stderr.decode(errors='replace').strip()[:200]}"
            )


class CheckpointExporter:
    """Exports a checkpoint of the head every ``interval_s`` while the head moves.

    Args:
        head: Returns the current checkpoint (synchronous; run in a thread).
        file, command: Where checkpoints go (see ``export_checkpoint``).
        interval_s: Seconds between exports.
    """

    def __init__(
        self,
        head: Callable[[], Checkpoint],
        *,
        file: Path | None,
        command: str | None,
        interval_s: float,
    ) -> None:
        self._head = head
        self._file = file
        self._command = command
        self._interval_s = interval_s
        self._last_seq: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.exported = 0
        """Checkpoints written so far."""

    def start(self) -> None:
        """Start exporting on the running loop (the first one at once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="luodi-audit-checkpoints")

    async def export_now(self) -> Checkpoint | None:
        """Export a checkpoint unless the head has not moved since the last one."""
        checkpoint = await asyncio.to_thread(self._head)
        if checkpoint.seq == self._last_seq:
            return None
        await asyncio.to_thread(
            export_checkpoint, checkpoint, file=self._file, command=self._command
        )
        self._last_seq = checkpoint.seq
        self.exported += 1
        return checkpoint

    async def close(self) -> None:
        """Stop the loop, then export a last checkpoint of the final head."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.export_now()
        except Exception as exc:  # closing must not fail on it; the log says why
            _log.error("final audit checkpoint failed: %s", exc)

    async def _run(self) -> None:
        while True:
            try:
                await self.export_now()
            except Exception as exc:  # keep exporting; each failure is logged loudly
                _log.error("audit checkpoint export failed: %s", exc)
            await asyncio.sleep(self._interval_s)
