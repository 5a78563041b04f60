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


def run(tmp_path: Path, source: str) -> list[dict[str, object]]:
    stages = [{"stage": "normalize", "strip_html": True}]
    spec = parse_pipeline({"input": source, "output": "out/kept.jsonl", "stages": stages}, tmp_path)
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
    check(run(tmp_path, "inbox"))
