"""E-mail as records: an mbox file or a folder of .eml files, one record per message.

The text is the subject, a blank line, then the plain-text parts of the body (the HTML
part when there is no plain one: ``normalize`` with ``strip_html`` cleans it). Only
``message_id`` and ``date`` are kept as metadata: addresses in From/To/Cc are personal
data the PII stage would not see there, so they are left out rather than carried along.
"""

from __future__ import annotations

import email
import mailbox
from collections.abc import Iterator
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path

from luodi.errors import ConfigError
from luodi.pipeline.stage import Record

__all__ = ["mail_messages", "message_record"]


def _body(msg: Message) -> str:
    plain: list[str] = []
    html: list[str] = []
    for part in msg.walk() if msg.is_multipart() else [msg]:
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            text = payload.decode(charset, errors="replace")
        except LookupError:  # an unknown charset name
            text = payload.decode("utf-8", errors="replace")
        (plain if kind == "text/plain" else html).append(text)
    return "\n\n".join(plain or html)


def _header(msg: Message, name: str) -> str:
    """A header's text, RFC 2047 encoded words (=?utf-8?b?...?=) decoded."""
    raw = msg.get(name)
    if raw is None:
        return ""
    try:
        return str(make_header(decode_header(str(raw))))
    except (UnicodeDecodeError, LookupError, HeaderParseError):
        return str(raw)


def message_record(msg: Message) -> Record:
    """One message as a record: subject and body as text, id and date as metadata."""
    subject = _header(msg, "Subject")
    return {
        "text": f"{subject}\n\n{_body(msg)}".strip(),
        "message_id": _header(msg, "Message-ID"),
        "date": _header(msg, "Date"),
    }


def mail_messages(path: Path, fmt: str) -> Iterator[Message]:
    """Messages of an mbox file (``mbox``) or of a folder's files by name (``eml``)."""
    if fmt == "mbox":
        if not path.is_file():
            raise ConfigError(f"cannot read mbox {path}: not a file")
        box = mailbox.mbox(path, create=False)
        try:
            yield from box
        finally:
            box.close()
        return
    if not path.is_dir():
        raise ConfigError(f"cannot read e-mail folder {path}: not a folder")
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        with file.open("rb") as f:
            msg = email.message_from_binary_file(f)  # compat32: plain Message objects
        yield msg
