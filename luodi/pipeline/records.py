"""Reading JSONL in shards without loading the file, and writing parts atomically."""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import os
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import IO, Any, TextIO

from luodi.errors import ConfigError, LuodiError
from luodi.pipeline.mail import mail_messages, message_record
from luodi.pipeline.stage import Batch, Record, Rejection

__all__ = [
    "LINE",
    "SIGNATURE",
    "SOURCE_HASH",
    "DocumentLoader",
    "append_file",
    "input_format",
    "public",
    "read_shards",
    "rejection_line",
    "write_jsonl",
    "write_parquet",
]

LINE = "_line"
"""Key the reader adds to each record: its 1-based line in the input; removed on output."""

SOURCE_HASH = "_source_sha256"
"""Key the reader adds: SHA-256 of the text as read (for provenance); removed on output."""

SIGNATURE = "_minhash"
"""Key dedup_near's ``prepare`` stores a record's MinHash values under, until the stage."""

_PRIVATE = frozenset({LINE, SOURCE_HASH, SIGNATURE})


def _rows(src: TextIO, fmt: str, text_field: str) -> Iterator[tuple[int, Record | Rejection]]:
    """(row number, record or why it is unreadable) for each row of the input, lazily."""
    if fmt == "csv":
        reader = csv.DictReader(src)
        for n, row in enumerate(reader, 1):
            if None in row:  # more cells than the header names
                yield n, Rejection({LINE: n}, "bad_csv", "more cells than header columns")
                continue
            yield n, _with_text(dict(row), n, text_field)
        return
    for n, raw in enumerate(src, 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield n, Rejection({LINE: n}, "bad_json", exc.msg)
            continue
        yield n, _with_text(record, n, text_field)


def _with_text(record: Any, n: int, text_field: str) -> Record | Rejection:
    if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
        return Rejection({LINE: n}, "no_text", f"not an object with a {text_field} string")
    if text_field != "text":
        record["text"] = record.pop(text_field)
    record[LINE] = n
    record[SOURCE_HASH] = hashlib.sha256(record["text"].encode()).hexdigest()
    return record


DocumentLoader = Callable[[Path], str]
"""A file's text (the knowledge loaders, lent by the CLI); raises LuodiError when it cannot."""


def input_format(path: Path, declared: str) -> str:
    """As declared, else: a folder → documents, .csv → csv, .mbox → mbox, else → jsonl."""
    if declared != "auto":
        return declared
    if path.is_dir():
        return "documents"
    suffixes = {".csv": "csv", ".mbox": "mbox", ".parquet": "parquet"}
    return suffixes.get(path.suffix.lower(), "jsonl")


def _document_rows(
    folder: Path, loader: DocumentLoader
) -> Iterator[tuple[int, Record | Rejection]]:
    if not folder.is_dir():
        raise ConfigError(f"cannot read document folder {folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    for n, file in enumerate(files, 1):
        rel = file.relative_to(folder).as_posix()
        try:
            text = loader(file)
        except LuodiError as exc:
            yield n, Rejection({LINE: n, "path": rel}, "bad_document", exc.message)
            continue
        yield n, _with_text({"path": rel, "text": text}, n, "text")


def _parquet_rows(path: Path, text_field: str) -> Iterator[tuple[int, Record | Rejection]]:
    """Rows of a Parquet file, read a row group batch at a time (the ``parquet`` extra)."""
    try:
        parquet: Any = importlib.import_module("pyarrow.parquet")
    except ImportError as exc:
        raise ConfigError(
            "Parquet input needs the parquet extra: pip install 'luodi[parquet]'"
        ) from exc
    try:
        file = parquet.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read Parquet input {path}: {exc}") from exc
    n = 0
    for batch in file.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            n += 1
            yield n, _with_text(row, n, text_field)


def _mail_rows(path: Path, fmt: str) -> Iterator[tuple[int, Record | Rejection]]:
    for n, msg in enumerate(mail_messages(path, fmt), 1):
        yield n, _with_text(message_record(msg), n, "text")


def read_shards(
    path: Path,
    shard_size: int,
    skip: int = 0,
    *,
    fmt: str = "jsonl",
    text_field: str = "text",
    document_loader: DocumentLoader | None = None,
) -> Iterator[tuple[int, Batch, list[Rejection]]]:
    """(shard index, records, unreadable rows) per ``shard_size`` input rows.

    Shards are cut by row count, so a shard is the same on every run of the same input:
    the unit of resume. The first ``skip`` shards are read past. Only one shard is held.
    """
    if fmt == "documents":
        if document_loader is None:
            raise ConfigError(
                "a folder of documents needs the knowledge loaders: use `luodi pipeline`"
            )
        yield from _shards(_document_rows(path, document_loader), shard_size, skip)
        return
    if fmt == "parquet":
        yield from _shards(_parquet_rows(path, text_field), shard_size, skip)
        return
    if fmt in ("mbox", "eml"):
        yield from _shards(_mail_rows(path, fmt), shard_size, skip)
        return
    try:
        src = path.open(encoding="utf-8", newline="" if fmt == "csv" else None)
    except OSError as exc:
        raise ConfigError(f"cannot read input {path}: {exc.strerror}") from exc
    with src:
        yield from _shards(_rows(src, fmt, text_field), shard_size, skip)


def _shards(
    rows: Iterator[tuple[int, Record | Rejection]], shard_size: int, skip: int
) -> Iterator[tuple[int, Batch, list[Rejection]]]:
    """Cut rows into shards of ``shard_size``, passing over the first ``skip`` shards."""
    for _ in islice(rows, skip * shard_size):
        pass
    index = skip
    while True:
        chunk = list(islice(rows, shard_size))
        if not chunk:
            return
        batch: Batch = []
        bad: list[Rejection] = []
        for _, item in chunk:
            if isinstance(item, Rejection):
                bad.append(item)
            else:
                batch.append(item)
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
            # default=str: Parquet dates, decimals and the like, as text.
            out.write(json.dumps(row, ensure_ascii=False, default=str))
            out.write("\n")
    os.replace(tmp, path)


def _pyarrow() -> tuple[Any, Any]:
    try:
        return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")
    except ImportError as exc:
        raise ConfigError(
            "Parquet output needs the parquet extra: pip install 'luodi[parquet]'"
        ) from exc


def _jsonl(parts: list[Path]) -> Iterator[dict[str, Any]]:
    for part in parts:
        with part.open(encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)


def _column_type(kinds: set[type]) -> str:
    """One column's Parquet type from the Python types its values had (None left out)."""
    if kinds <= {str}:
        return "string"
    if kinds == {bool}:
        return "bool"
    if kinds <= {int}:
        return "int64"
    if kinds <= {int, float}:
        return "float64"
    return "json"  # nested or mixed values: JSON text, so nothing is lost


def write_parquet(path: Path, parts: list[Path], batch_rows: int = 10_000) -> None:
    """The JSONL ``parts`` as one Parquet file, ``batch_rows`` records in memory at a time.

    A first pass finds every field and the types its values take: a field whose values
    are all strings, booleans, integers or numbers gets that column type; one holding
    nested or mixed values is written as JSON text. Records without a field get null.
    """
    pa, parquet = _pyarrow()
    kinds: dict[str, set[type]] = {}
    for row in _jsonl(parts):
        for key, value in row.items():
            seen = kinds.setdefault(key, set())
            if value is not None:
                seen.add(type(value))
    columns = {key: _column_type(types) for key, types in kinds.items()} or {"text": "string"}
    arrow = {"string": pa.string(), "json": pa.string(), "bool": pa.bool_(),
             "int64": pa.int64(), "float64": pa.float64()}  # fmt: skip
    schema = pa.schema([pa.field(k, arrow[t]) for k, t in columns.items()])
    as_json = [k for k, t in columns.items() if t == "json"]
    with parquet.ParquetWriter(path, schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in _jsonl(parts):
            for key in as_json:
                if row.get(key) is not None:
                    row[key] = json.dumps(row[key], ensure_ascii=False)
            batch.append(row)
            if len(batch) >= batch_rows:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch.clear()
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))


def append_file(dst: IO[str], src: Path) -> None:
    with src.open(encoding="utf-8") as f:
        while chunk := f.read(1 << 20):
            dst.write(chunk)
