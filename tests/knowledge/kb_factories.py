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


def _zip(members: Mapping[str, bytes]) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


_DOCX_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" '
    b'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/word/document.xml" ContentType="application/'
    b'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_DOCX_RELS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    b'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)


def make_docx_bomb(paragraphs: int = 1_000_000, padding: int = 0) -> bytes:
    """A minimal DOCX of ``paragraphs`` empty paragraphs (and ``padding`` bytes of comment)."""
    body = b"<w:p/>" * paragraphs + b"<w:p><w:r><w:t>end</w:t></w:r></w:p>"
    document = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        + (b"<!--" + b" " * padding + b"-->" if padding else b"")
        + b"<w:body>"
        + body
        + b"</w:body></w:document>"
    )
    return _zip(
        {
            "[Content_Types].xml": _DOCX_TYPES,
            "_rels/.rels": _DOCX_RELS,
            "word/document.xml": document,
        }
    )


def make_xlsx_declaring(dimension: str, rows: int = 2) -> bytes:
    """A workbook of ``rows`` one-cell rows whose sheet declares ``dimension``."""
    import re
    import zipfile

    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["question"])
    for n in range(rows):
        sheet.append([f"How do I open account type {n}?"])
    buf = io.BytesIO()
    workbook.save(buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    members = {}
    for info in src.infolist():
        data = src.read(info.filename)
        if info.filename == "xl/worksheets/sheet1.xml":
            data = re.sub(
                rb'<dimension ref="[^"]*"/>', f'<dimension ref="{dimension}"/>'.encode(), data
            )
            assert dimension.encode() in data
        members[info.filename] = data
    return _zip(members)


def make_pdf_pages(count: int) -> bytes:
    """A PDF of ``count`` real pages sharing one content stream (about 60 bytes a page)."""
    stream = b"BT /F1 12 Tf 20 100 Td (Quarterly report) Tj ET"
    head = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % (5 + i) for i in range(count))
        + b"] /Count %d >>" % count,
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    page = b"<< /Type /Page /Parent 2 0 R /Contents 3 0 R /Resources << /Font << /F1 4 0 R >> >> >>"
    objects = [*head, *([page] * count)]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)
