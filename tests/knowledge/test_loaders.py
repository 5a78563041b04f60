"""Every supported format yields its text as structural blocks; bad files are named."""

from __future__ import annotations

import pytest
from kb_factories import FIXTURES, make_docx, make_pdf, make_xlsx

from luodi.knowledge import LOADERS, DocumentLoadError, load_document


@pytest.mark.parametrize(
    ("name", "data", "expected_kinds", "expected_text"),
    [
        ("a.txt", (FIXTURES / "faq_en.txt").read_bytes(), {"text"}, "1.5% interest"),
        ("a.md", (FIXTURES / "faq_cn.md").read_bytes(), {"heading", "text", "list"}, "五万元"),
        (
            "a.html",
            (FIXTURES / "branches.html").read_bytes(),
            {"heading", "text", "table"},
            "EUR | one day",
        ),
        ("a.csv", (FIXTURES / "products.csv").read_bytes(), {"row"}, "product: Green Mortgage"),
        ("a.pdf", make_pdf(["Lost cards must be reported within 24 hours."]), {"text"}, "24 hours"),
        ("a.docx", make_docx(), {"heading", "text", "list", "table"}, "Risk level | R2"),
        ("a.xlsx", make_xlsx(), {"heading", "row"}, "answer: 账单日后第二十天"),
    ],
)
def test_format_is_loaded_into_blocks(
    name: str, data: bytes, expected_kinds: set[str], expected_text: str
) -> None:
    blocks = load_document(name, data, LOADERS)
    assert {b.kind for b in blocks} == expected_kinds
    assert any(expected_text in b.text for b in blocks)


def test_html_scripts_and_navigation_are_dropped() -> None:
    blocks = load_document("p.html", (FIXTURES / "branches.html").read_bytes(), LOADERS)
    text = " ".join(b.text for b in blocks)
    assert "ignore me" not in text
    assert "About" not in text


def test_gb18030_text_is_decoded() -> None:
    blocks = load_document("legacy.txt", "旧系统导出的文本".encode("gb18030"), LOADERS)
    assert blocks[0].text == "旧系统导出的文本"


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("broken.pdf", b"%PDF-1.4 this is not a pdf", "broken.pdf"),
        ("broken.docx", b"not a zip", "broken.docx"),
        ("image.png", b"\x89PNG", "unsupported file type .png"),
        ("empty.txt", b"   \n", "no text found"),
    ],
)
def test_unreadable_file_error_names_the_file(name: str, data: bytes, message: str) -> None:
    with pytest.raises(DocumentLoadError, match=message):
        load_document(name, data, LOADERS)
