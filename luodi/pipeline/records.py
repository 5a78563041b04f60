"""Reading JSONL in shards without loading the file, and writing parts atomically."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import IO, Any

from luodi.errors import ConfigError
from luodi.pipeline.stage import Batch, Rejection

__all__ = [
    "LINE",
    "SIGNATURE",
    "SOURCE_HASH",
    "append_file",
    "public",
    "read_shards",
    "rejection_line",
    "write_jsonl",
]

LINE = "_line"
"""Key the reader adds to each record: its 1-based line in the input; removed on output."""

SOURCE_HASH = "_source_sha256"
"""Key the reader adds: SHA-256 of the text as read (for provenance); removed on output."""

SIGNATURE = "_minhash"
"""Key dedup_near's ``prepare`` stores a record's MinHash values under, until the stage."""

_PRIVATE = frozenset({LINE, SOURCE_HASH, SIGNATURE})


def read_shards(
    path: Path, shard_size: int, skip: int = 0
) -> Iterator[tuple[int, Batch, list[Rejection]]]:
    """(shard index, records, unreadable lines) per ``shard_size`` input lines.

    Shards are cut by line count, so a shard is the same on every run of the same input:
    the unit of resume. The first ``skip`` shards are passed over without parsing.
    """
    try:
        src = path.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read input {path}: {exc.strerror}") from exc
    with src:
        for _ in islice(src, skip * shard_size):
            pass
        index = skip
        line_no = skip * shard_size
        while True:
            lines = list(islice(src, shard_size))
            if not lines:
                return
            batch: Batch = []
            bad: list[Rejection] = []
            for raw in lines:
                line_no += 1
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except json.JSONDecodeError as exc:
                    bad.append(Rejection({LINE: line_no}, "bad_json", exc.msg))
                    continue
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    bad.append(
                        Rejection({LINE: line_no}, "no_text", "not an object with a text string")
                    )
                    continue
                record[LINE] = line_no
                record[SOURCE_HASH] = hashlib.sha256(record["text"].encode()).hexdigest()
                batch.append(record)
            yield index, batch, bad
            index += 1


def public(record: dict[str, Any]) -> dict[str, Any]:
    """The record without the keys the runner and stages add for themselves."""
    return {k: v for k, v in record.items() if k not in _PRIVATE}


def rejection_line(stage: str, rejection: Rejection) -> dict[str, Any]:
    return {
        "stage": stage,
        "reason": rejection.reason,
        "detail": rejection.detail,
        "line": rejection.record.get(LINE),
        "record": public(rejection.record),
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` to ``path`` through a temporary file and a rename (all or nothing)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False))
            out.write("\n")
    os.replace(tmp, path)


def append_file(dst: IO[str], src: Path) -> None:
    with src.open(encoding="utf-8") as f:
        while chunk := f.read(1 << 20):
            dst.write(chunk)
