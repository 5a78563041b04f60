"""PII over files for the data pipeline: plain text, JSONL and CSV, record by record.

Batch work needs no vault: ``pseudonym`` becomes ``replace`` with one numbering for the
whole file, so the same value gets the same tag on every line.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from luodi.errors import InvalidRequestError
from luodi.privacy.analyzer import Analyzer
from luodi.privacy.anonymizer import Anonymizer
from luodi.privacy.finding import Finding
from luodi.privacy.operators import OperatorContext
from luodi.privacy.policy import Policy

__all__ = ["FileFormat", "FileReport", "FileScanner", "detect_format"]

FileFormat = Literal["text", "jsonl", "csv"]


def detect_format(path: Path) -> FileFormat:
    """The format a file's suffix suggests (``.jsonl``/``.ndjson``, ``.csv``, else text)."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    return "text"


@dataclass
class FileReport:
    """Totals for one file."""

    records: int = 0
    findings: Counter[str] = field(default_factory=Counter)
    bytes_read: int = 0


Progress = Callable[[int], None]
"""Called with the bytes consumed since the last call."""


class FileScanner:
    """Scans or redacts one file with an analyzer and a policy.

    Args:
        analyzer: the analyzer to run.
        policy: entities, operators and threshold to apply.
        fields: JSONL keys (dotted for nesting) or CSV columns to process; all string
            values / all columns when empty.
    """

    def __init__(self, analyzer: Analyzer, policy: Policy, fields: Sequence[str] = ()) -> None:
        self.analyzer = analyzer
        self.policy = policy
        self.fields = tuple(fields)
        self._operators = {
            e: ("replace" if op == "pseudonym" else op) for e, op in policy.operators.items()
        }
        self._anonymizer = Anonymizer(
            OperatorContext(
                mask_keep_start=policy.mask_keep_start,
                mask_keep_end=policy.mask_keep_end,
                mask_char=policy.mask_char,
            )
        )
        self._entities = sorted(policy.entities)

    def with_hash_secret(self, secret: bytes | None) -> FileScanner:
        """Use this HMAC key for the ``hash`` operator."""
        self._anonymizer.context.hash_secret = secret
        return self

    def _findings(self, text: str) -> list[Finding]:
        return self.analyzer.analyze(
            text,
            entities=self._entities,
            min_score=self.policy.min_score,
            near_misses=self.policy.near_misses,
        )

    def scan(
        self, src: TextIO, fmt: FileFormat, progress: Progress | None = None
    ) -> Iterator[tuple[int, str, Finding, str]]:
        """Yield (record number, field, finding, matched text) for every finding."""
        for n, record, _ in self._records(src, fmt, progress):
            for name, text in record:
                for f in self._findings(text):
                    yield n, name, f, text[f.start : f.end]

    def redact(
        self, src: TextIO, dst: TextIO, fmt: FileFormat, progress: Progress | None = None
    ) -> FileReport:
        """Write ``src`` to ``dst`` with every finding replaced; returns the totals."""
        report = FileReport()
        for _, record, write_back in self._records(src, fmt, progress):
            report.records += 1
            new_values: list[str] = []
            for _, text in record:
                found = self._findings(text)
                report.findings.update(f.entity_type for f in found)
                new_values.append(self._anonymizer.anonymize(text, found, self._operators).text)
            dst.write(write_back(new_values))
        return report

    def _records(
        self, src: TextIO, fmt: FileFormat, progress: Progress | None
    ) -> Iterator[tuple[int, list[tuple[str, str]], Callable[[list[str]], str]]]:
        if fmt == "csv":
            yield from self._csv(src, progress)
            return
        for n, line in enumerate(src, 1):
            if progress is not None:
                progress(len(line.encode()))
            if fmt == "text":
                body = line.rstrip("\n")
                ending = line[len(body) :]
                yield n, [("line", body)], lambda new, e=ending: new[0] + e  # type: ignore[misc]
                continue
            if not line.strip():
                yield n, [], lambda new, ln=line: ln  # type: ignore[misc]
                continue
            try:
                doc = json.loads(line)
            except ValueError as exc:
                raise InvalidRequestError(f"line {n} is not JSON: {exc}") from exc
            slots = list(_string_leaves(doc, self.fields))
            yield n, [(path, parent[key]) for path, parent, key in slots], _jsonl_writer(doc, slots)

    def _csv(
        self, src: TextIO, progress: Progress | None
    ) -> Iterator[tuple[int, list[tuple[str, str]], Callable[[list[str]], str]]]:
        reader = csv.reader(src)
        header = next(reader, None)
        if header is None:
            return
        unknown = [c for c in self.fields if c not in header]
        if unknown:
            raise InvalidRequestError(f"CSV has no columns {unknown}; it has {header}")
        cols = [header.index(c) for c in self.fields] if self.fields else list(range(len(header)))

        def row_text(row: list[str]) -> str:
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerow(row)
            return buf.getvalue()

        first = True
        for n, row in enumerate(reader, 1):
            line = row_text(row)
            if progress is not None:
                progress(len(line.encode()))
            record = [(header[i], row[i]) for i in cols if i < len(row)]

            def write(new: list[str], row: list[str] = row, emit_header: bool = first) -> str:
                out = list(row)
                for i, value in zip([i for i in cols if i < len(row)], new, strict=True):
                    out[i] = value
                return (row_text(header) if emit_header else "") + row_text(out)

            first = False
            yield n, record, write


def _string_leaves(doc: Any, fields: Sequence[str]) -> Iterator[tuple[str, Any, Any]]:
    """(dotted path, parent, key) of every string leaf, or of the named fields."""
    stack: list[tuple[str, Any, Any]] = [("", [doc], 0)]
    while stack:
        path, parent, key = stack.pop()
        value = parent[key]
        if isinstance(value, str):
            if not fields or path in fields:
                yield path, parent, key
        elif isinstance(value, dict):
            for k in reversed(list(value)):
                stack.append((f"{path}.{k}" if path else str(k), value, k))
        elif isinstance(value, list):
            for i in reversed(range(len(value))):
                stack.append((path, value, i))


def _jsonl_writer(doc: Any, slots: list[tuple[str, Any, Any]]) -> Callable[[list[str]], str]:
    def write(new: list[str]) -> str:
        for (_, parent, key), value in zip(slots, new, strict=True):
            parent[key] = value
        return json.dumps(doc, ensure_ascii=False) + "\n"

    return write
