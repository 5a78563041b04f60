"""CSV and XLSX: every data row becomes one ``row`` block of ``header: value`` pairs."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from luodi.knowledge.loaders.text import decode_text
from luodi.knowledge.types import Block

__all__ = ["load_csv", "load_xlsx"]


def _rows(rows: Iterable[Sequence[object]], sheet: str = "") -> list[Block]:
    blocks: list[Block] = []
    header: list[str] | None = None
    for raw in rows:
        cells = ["" if c is None else str(c).strip() for c in raw]
        if not any(cells):
            continue
        if header is None:
            header = cells
            if sheet:
                blocks.append(Block("heading", sheet, 1))
            continue
        pairs = [
            f"{h or f'col{i + 1}'}: {v}"
            for i, (h, v) in enumerate(zip(header, cells, strict=False))
            if v
        ]
        blocks.append(Block("row", "; ".join(pairs)))
    return blocks


def load_csv(data: bytes) -> list[Block]:
    """Row blocks of a CSV file whose first row is the header."""
    text = decode_text(data)
    dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t") if text.strip() else csv.excel
    return _rows(csv.reader(io.StringIO(text), dialect))


def load_xlsx(data: bytes) -> list[Block]:
    """Row blocks of every sheet of a workbook; each sheet's first row is its header."""
    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        blocks: list[Block] = []
        for sheet in workbook.worksheets:
            blocks.extend(_rows(sheet.iter_rows(values_only=True), sheet.title))
        return blocks
    finally:
        workbook.close()
