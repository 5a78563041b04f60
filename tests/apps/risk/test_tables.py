"""Batch files: CSV, Parquet, JSON and JSONL become the same cases."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from luodi.apps.risk.tables import load_cases, load_labelled
from luodi.errors import InvalidRequestError
from tests.apps.risk.cases import labelled_set


def _rows() -> list[dict[str, object]]:
    return [
        {"id": r["id"], **r["features"], "events": json.dumps(r["events"]), "is_fraud": r["label"]}  # type: ignore[dict-item]
        for r in labelled_set(6)
    ]


def test_csv_and_parquet_give_the_same_labelled_cases(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    rows = _rows()
    with (tmp_path / "l.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "l.parquet")
    from_csv = load_labelled(tmp_path / "l.csv", label="is_fraud")
    from_parquet = load_labelled(tmp_path / "l.parquet", label="is_fraud")
    assert [c.model_dump() for c in from_csv] == [c.model_dump() for c in from_parquet]
    assert [c.label for c in from_csv] == [r["is_fraud"] for r in rows]
    assert from_csv[0].events and isinstance(from_csv[0].features["account_age_days"], int)


def test_jsonl_in_the_contract_shape(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in labelled_set(4)))
    assert [c.id for c in load_cases(path)] == [r["id"] for r in labelled_set(4)]
    assert [c.label for c in load_labelled(path, label="label")] == [1, 0, 1, 0]


def test_an_unknown_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cases.xlsx"
    path.write_text("x")
    with pytest.raises(InvalidRequestError, match="unknown format"):
        load_cases(path)
