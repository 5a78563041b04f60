"""CSV and XLSX: every data row becomes one ``row`` block of ``header: value`` pairs."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from luodi.knowledge.loaders.limits import ParseLimits, PartCounter
from luodi.knowledge.loaders.text import decode_text
from luodi.knowledge.types import Block

__all__ = ["load_csv", "load_xlsx"]


def _rows(rows: Iterable[Sequence[object]], counter: PartCounter, sheet: str = "") -> list[Block]:
    blocks: list[Block] = []
    header: list[str] | None = None
    for raw in rows:
        counter.add(len(raw) + 1)  # an empty row counts too: gaps are rows to walk
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


def load_csv(data: bytes, limits: ParseLimits) -> list[Block]:
    """Row blocks of a CSV file whose first row is the header."""
    text = decode_text(data)
    dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t") if text.strip() else csv.excel
    return _rows(csv.reader(io.StringIO(text), dialect), PartCounter(limits, "cells"))


def load_xlsx(data: bytes, limits: ParseLimits) -> list[Block]:
    """Row blocks of every sheet of a workbook; each sheet's first row is its header.

    A sheet's declared dimension is ignored (``reset_dimensions``): openpyxl would pad
    every row to the declared width, so a sheet claiming ``A1:XFD1048576`` cost rows
    times sixteen thousand columns. Only the cells present are read and counted.
    """
    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        blocks: list[Block] = []
        counter = PartCounter(limits, "cells")
        for sheet in workbook.worksheets:
            reset = getattr(sheet, "reset_dimensions", None)
            if reset is not None:
                reset()
            blocks.extend(_rows(sheet.iter_rows(values_only=True), counter, sheet.title))
        return blocks
    finally:
        workbook.close()
