"""Every supported format yields its text as structural blocks; bad files are named."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from kb_factories import (
    FIXTURES,
    make_docx,
    make_docx_bomb,
    make_pdf,
    make_xlsx,
    make_xlsx_declaring,
)

from luodi.knowledge import LOADERS, DocumentLoadError, load_document
from luodi.knowledge.loaders import DocumentLimitError, ParseLimits
from luodi.knowledge.loaders.isolation import parse_isolated


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


def test_xlsx_declared_dimension_is_ignored() -> None:
    # 20,000 one-cell rows declared 16,384 columns wide: padding them was 327 million cells.
    data = make_xlsx_declaring("A1:XFD20001", rows=20_000)
    start = time.perf_counter()
    blocks = parse_isolated("faq.xlsx", data, ParseLimits())
    assert time.perf_counter() - start < 10
    assert (
        len(blocks) == 20_001 and blocks[-1].text == "question: How do I open account type 19999?"
    )


def test_isolated_parse_gives_the_same_blocks_as_in_process() -> None:
    for name, data in (("a.docx", make_docx()), ("a.xlsx", make_xlsx()), ("a.md", b"# T\n\nbody")):
        assert parse_isolated(name, data, ParseLimits()) == load_document(name, data, LOADERS)


MAIN_SCRIPT = """\
import os, sys
with open(sys.argv[1], "a") as log:  # once per run of this script, in any process
    log.write(f"{os.getpid()}\\n")
from luodi.knowledge.loaders import ParseLimits
from luodi.knowledge.loaders.isolation import parse_isolated

if __name__ == "__main__":
    for i in range(3):
        assert parse_isolated(f"{i}.md", b"# T\\n\\nbody", ParseLimits())[1].text == "body"
"""


def test_parser_children_do_not_run_the_main_script_again(tmp_path: Path) -> None:
    # `luodi serve` runs from a script (the console script); each parse used to run it
    # again in the child, importing all of luodi: 2-3 s per document.
    script, log = tmp_path / "ingest.py", tmp_path / "runs.log"
    script.write_text(MAIN_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(log)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert len(log.read_text().split()) == 1


@pytest.mark.parametrize(
    ("limits", "setting"),
    [
        (ParseLimits(), "knowledge.max_zip_ratio=100"),
        (ParseLimits(max_zip_ratio=10_000, max_unzipped_mb=1), "knowledge.max_unzipped_mb=1"),
        (ParseLimits(max_zip_ratio=10_000), "knowledge.max_parts=200000"),
        (ParseLimits(max_zip_ratio=10_000, max_parts=10**8, memory_mb=200), "parse_memory_mb=200"),
    ],
)
def test_docx_bomb_is_refused_naming_the_limit(limits: ParseLimits, setting: str) -> None:
    bomb = make_docx_bomb()
    start = time.perf_counter()
    with pytest.raises(DocumentLimitError, match=setting.replace(".", r"\.")) as caught:
        parse_isolated("bomb.docx", bomb, limits)
    assert caught.value.message.startswith("bomb.docx: ")
    assert time.perf_counter() - start < 30
