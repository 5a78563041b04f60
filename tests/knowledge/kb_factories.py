"""Helpers of the knowledge tests: fake principal and audit, corpus and file makers."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent.parent / "fixtures" / "knowledge"


@dataclass(frozen=True)
class FakePrincipal:
    """Anything with ``tenant`` and ``roles`` is a principal to the knowledge service."""

    tenant: str | None = None
    roles: Sequence[str] = ()


@dataclass
class ListAudit:
    """An audit sink that keeps records in a list."""

    records: list[tuple[str, str, Mapping[str, Any]]] = field(default_factory=list)

    def record(self, action: str, resource: str, detail: Mapping[str, Any]) -> None:
        self.records.append((action, resource, detail))


def fixture_files() -> list[tuple[str, bytes]]:
    """The committed corpus as ``(name, bytes)``."""
    return [(p.name, p.read_bytes()) for p in sorted(FIXTURES.iterdir()) if p.name != "LICENSE.md"]


def make_pdf(lines: Sequence[str]) -> bytes:
    """A one-page PDF with a text layer."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    for line in lines:
        pdf.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    return bytes(pdf.output())


def make_docx() -> bytes:
    """A Word file with a heading, a paragraph, a list and a table."""
    import docx

    document = docx.Document()
    document.add_heading("Wealth management products", level=1)
    document.add_paragraph("The Steady Income fund invests in government bonds.")
    document.add_paragraph("Minimum investment 10,000 yuan", style="List Bullet")
    document.add_paragraph("Redemption within two working days", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Risk level", "R2"
    table.cell(1, 0).text, table.cell(1, 1).text = "Term", "open-ended"
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def make_xlsx() -> bytes:
    """A workbook with one sheet of FAQ rows."""
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "FAQ"
    sheet.append(["question", "answer"])
    sheet.append(["How long does a wire transfer take?", "Domestic wires arrive within two hours."])
    sheet.append(["信用卡还款日是哪天？", "账单日后第二十天为最后还款日。"])
    buf = io.BytesIO()
    workbook.save(buf)
    return buf.getvalue()
