"""HTML: headings, paragraphs, lists and tables; scripts, styles and navigation dropped."""

from __future__ import annotations

from bs4 import BeautifulSoup, Tag

from luodi.knowledge.loaders.limits import ParseLimits, PartCounter
from luodi.knowledge.loaders.text import decode_text
from luodi.knowledge.types import Block

__all__ = ["load_html"]

_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_DROP = ("script", "style", "nav", "noscript", "template")


def _table(tag: Tag) -> str:
    rows = []
    for tr in tag.find_all("tr"):
        cells = [c.get_text(" ", strip=True) for c in tr.find_all(["th", "td"])]
        rows.append(" | ".join(cells))
    return "\n".join(r for r in rows if r.strip())


def load_html(data: bytes, limits: ParseLimits) -> list[Block]:
    """Blocks of an HTML page in document order."""
    soup = BeautifulSoup(decode_text(data), "html.parser")
    PartCounter(limits, "HTML elements").add(len(soup.find_all(True)))
    for tag in soup(_DROP):
        tag.decompose()
    blocks: list[Block] = []
    for tag in soup.find_all([*_HEADINGS, "p", "ul", "ol", "table", "pre", "blockquote"]):
        if tag.find_parent(["table", "ul", "ol"]) is not None:
            continue  # inside a block already taken whole
        if tag.name in _HEADINGS:
            blocks.append(Block("heading", tag.get_text(" ", strip=True), _HEADINGS[tag.name]))
        elif tag.name in ("ul", "ol"):
            items = [f"- {li.get_text(' ', strip=True)}" for li in tag.find_all("li")]
            blocks.append(Block("list", "\n".join(items)))
        elif tag.name == "table":
            blocks.append(Block("table", _table(tag)))
        else:
            blocks.append(Block("text", tag.get_text(" ", strip=True)))
    if not blocks and soup.get_text(strip=True):
        blocks.append(Block("text", soup.get_text(" ", strip=True)))
    return [b for b in blocks if b.text]
