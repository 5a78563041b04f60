"""E-mail inputs: an mbox file and a folder of .eml files, one record per message."""

from __future__ import annotations

import mailbox
from email.message import EmailMessage
from pathlib import Path

from luodi.pipeline import LocalRunner, parse_pipeline
from tests.pipeline.conftest import EN, ZH, read_jsonl


def message(subject: str, plain: str | None, html: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = "张伟 <zhang.wei@example.com>"
    msg["To"] = "ops@example.com"
    msg["Message-ID"] = f"<{abs(hash(subject))}@example.com>"
    msg["Date"] = "Mon, 30 Nov 2026 10:00:00 +0800"
    if plain is not None:
        msg.set_content(plain)
    if html is not None:
        if plain is None:
            msg.set_content(html, subtype="html")
        else:
            msg.add_alternative(html, subtype="html")
    msg.add_attachment(b"%PDF-1.4 binary", maintype="application", subtype="pdf")
    return msg


MESSAGES = [
    message("图书馆通知", ZH[2]),
    message("Weekly update", EN[0], f"<p>{EN[0]}</p>"),
    message("HTML only", None, f"<html><body><nav>Home</nav><p>{EN[2]}</p></body></html>"),
]


def run(tmp_path: Path, source: str, fmt: str = "auto") -> list[dict[str, object]]:
    stages = [{"stage": "normalize", "strip_html": True}]
    doc = {"input": source, "input_format": fmt, "output": "out/kept.jsonl", "stages": stages}
    spec = parse_pipeline(doc, tmp_path)
    LocalRunner(spec, workers=1).run()
    return read_jsonl(tmp_path / "out" / "kept.jsonl")


def check(records: list[dict[str, object]]) -> None:
    assert [r["text"] for r in records] == [
        f"图书馆通知\n\n{ZH[2]}",
        f"Weekly update\n\n{EN[0]}",  # the plain part, not the HTML copy
        f"HTML only\n\n{EN[2]}",  # HTML stripped by normalize, nav removed
    ]
    assert all(set(r) == {"text", "message_id", "date"} for r in records)  # no addresses


def test_mbox_file(tmp_path: Path) -> None:
    box = mailbox.mbox(tmp_path / "mail.mbox")
    for msg in MESSAGES:
        box.add(msg)
    box.close()
    check(run(tmp_path, "mail.mbox"))


def test_folder_of_eml_files(tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    for i, msg in enumerate(MESSAGES):
        (tmp_path / "inbox" / f"{i:03d}.eml").write_bytes(msg.as_bytes())
    check(run(tmp_path, "inbox", "eml"))


def test_folder_of_documents_through_the_knowledge_loaders(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from luodi.cli.pipeline import app
    from tests.pipeline.conftest import write_pipeline

    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.md").write_text(f"# 通知\n\n{ZH[2]}\n", encoding="utf-8")
    (docs / "sub" / "b.html").write_text(f"<html><body><p>{EN[1]}</p></body></html>")
    (docs / "c.bin").write_bytes(b"\x00\x01")
    pipeline = write_pipeline(tmp_path, [{"stage": "normalize"}], input="docs")
    result = CliRunner().invoke(app, ["run", str(pipeline), "--workers", "1"])
    assert result.exit_code == 0, result.output
    kept = read_jsonl(tmp_path / "out" / "kept.jsonl")
    assert [r["path"] for r in kept] == ["a.md", "sub/b.html"]
    assert ZH[2] in kept[0]["text"] and kept[1]["text"] == EN[1]
    (bad,) = read_jsonl(tmp_path / "out" / "rejected.jsonl")
    assert (bad["reason"], bad["record"]["path"]) == ("bad_document", "c.bin")
