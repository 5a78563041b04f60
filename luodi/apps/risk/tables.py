"""Batch input: cases from CSV, Parquet, JSON or JSONL files.

CSV and Parquet hold one row per case: an id column, feature columns, optionally an
``events`` column holding the event list as JSON, and for training a label column
(``1/0``, ``true/false``, ``yes/no``). JSON is a list of cases in the API's contract,
JSONL one case per line. Errors name the row and column.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from luodi.apps.risk.case import Case, LabelledCase, parse_cases, parse_labelled
from luodi.errors import InvalidRequestError

__all__ = ["load_cases", "load_labelled", "read_rows"]

_TRUE = {"1", "1.0", "true", "yes", "y", "fraud"}
_FALSE = {"0", "0.0", "false", "no", "n", "legit"}


def _cell(value: Any) -> Any:
    """A CSV cell as a number where it reads as one; empty cells are absent."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() and "." not in text else number
    return value


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The file's records as dicts (CSV, Parquet, JSON list, or JSONL)."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise InvalidRequestError(f"{path}: no such file", param="data")
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return [dict(row) for row in csv.DictReader(handle)]
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise InvalidRequestError(
                "reading Parquet needs pyarrow: pip install -c constraints.txt pyarrow",
                param="data",
            ) from None
        rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        return rows
    if suffix == ".jsonl":
        with path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("cases"), list):
            data = data["cases"]
        if not isinstance(data, list):
            raise InvalidRequestError(f"{path}: expected a list of cases", param="data")
        return data
    raise InvalidRequestError(
        f"{path}: unknown format {suffix!r}; use .csv, .parquet, .json or .jsonl", param="data"
    )


def _label(value: Any, where: str) -> int:
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    raise InvalidRequestError(f"{where}: label {value!r} is not 0/1, true/false or yes/no")


def _as_case(row: dict[str, Any], index: int, id_column: str, label: str | None) -> dict[str, Any]:
    if "features" in row and isinstance(row["features"], dict):
        case = dict(row)  # already in the contract's shape (JSON input)
        if label is None:
            case.pop("label", None)  # a labelled file may be scored too
    else:
        features = {
            k: v
            for k, v in ((k, _cell(v)) for k, v in row.items())
            if k not in {id_column, "events", label} and v is not None
        }
        events = row.get("events")
        if isinstance(events, str):
            events = json.loads(events) if events.strip() else []
        case = {"id": str(row.get(id_column) or f"row-{index + 1}"), "features": features}
        case["events"] = events or []
    if label is not None:
        if label not in row:
            raise InvalidRequestError(f"row {index + 1}: no {label!r} column", param="label")
        case.pop(label, None)
        case["label"] = _label(row[label], f"row {index + 1}")
    case["id"] = str(case.get("id", f"row-{index + 1}"))
    return case


def load_cases(path: Path, *, id_column: str = "id") -> list[Case]:
    """Cases to score from ``path``."""
    rows = read_rows(path)
    return parse_cases([_as_case(r, i, id_column, None) for i, r in enumerate(rows)], "rows")


def load_labelled(path: Path, *, label: str, id_column: str = "id") -> list[LabelledCase]:
    """Labelled cases from ``path``; ``label`` names the 0/1 column (or JSON field)."""
    rows = read_rows(path)
    return parse_labelled([_as_case(r, i, id_column, label) for i, r in enumerate(rows)], "rows")
