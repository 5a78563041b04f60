"""Unicode normalisation, control characters, whitespace, optional HTML boilerplate removal."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Literal

from luodi.pipeline.spec import NormalizeSpec
from luodi.pipeline.stage import Batch, Outcome, Rejection

__all__ = ["Normalize", "normalize_text", "strip_html"]

# C0/C1 controls except \t and \n; zero-width characters and the BOM.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff]")
_SPACES = re.compile(r"[^\S\n]+")  # whitespace runs other than newlines
_BLANK_LINES = re.compile(r"\n\s*\n+")
_LOOKS_HTML = re.compile(r"<(html|body|div|p|br|span|script|style|a|table)\b", re.IGNORECASE)
# Full-width punctuation NFKC would turn into ASCII: Chinese text keeps its own.
_CJK_PUNCT = re.compile(r"([\uff01\uff08\uff09\uff0c\uff1a\uff1b\uff1f])")
_BOILERPLATE = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe")


def strip_html(text: str) -> str:
    """Visible text of an HTML fragment, without scripts, navigation and footers."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(list(_BOILERPLATE)):
        tag.decompose()
    return soup.get_text("\n")


def normalize_text(
    text: str, form: Literal["NFC", "NFKC"] = "NFKC", keep_cjk_punctuation: bool = True
) -> str:
    """NFKC (full-width → ASCII, compatibility forms), controls out, whitespace collapsed.

    With ``keep_cjk_punctuation``, ，！？；：（） stay full-width: Chinese text keeps its
    punctuation while full-width letters and digits still become ASCII.
    """
    if keep_cjk_punctuation and form == "NFKC":
        parts = _CJK_PUNCT.split(text)  # odd items are the separators themselves
        text = "".join(p if i % 2 else unicodedata.normalize(form, p) for i, p in enumerate(parts))
    else:
        text = unicodedata.normalize(form, text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    text = "\n".join(lines)
    return _BLANK_LINES.sub("\n\n", text).strip()


class Normalize:
    name = "normalize"
    stateful = False

    def __init__(self, spec: NormalizeSpec) -> None:
        self.spec = spec

    def __call__(self, batch: Batch) -> Outcome:
        out = Outcome(kept=[], stats=Counter())
        for record in batch:
            text = record.get("text")
            if not isinstance(text, str):
                out.rejected.append(Rejection(record, "no_text", "text is missing or not a string"))
                continue
            if self.spec.strip_html and _LOOKS_HTML.search(text):
                text = strip_html(text)
                out.stats["html_stripped"] += 1
            new = normalize_text(text, self.spec.form, self.spec.keep_cjk_punctuation)
            if new != record["text"]:
                out.stats["changed"] += 1
            if not new:
                out.rejected.append(Rejection(record, "empty", "nothing left after normalising"))
                continue
            out.kept.append({**record, "text": new})
        return out
