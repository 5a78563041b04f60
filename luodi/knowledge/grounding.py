"""Put retrieved passages into a chat prompt, numbered, and describe them as citations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from luodi.knowledge.types import Citation, Hit

__all__ = ["INSTRUCTION", "citations_of", "inject_context", "last_user_text"]

INSTRUCTION = (
    "Answer using the numbered reference passages below when they are relevant, and cite "
    "each passage you use as [n]. If they do not contain the answer, say so.\n"
    "请依据下列编号的参考资料回答，并用 [n] 标注引用的资料；资料中没有答案时请如实说明。"
)


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """Text of the last user message (string content or the text parts of a list)."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                str(p.get("text", ""))
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            )
    return ""


def _context(hits: Sequence[Hit]) -> str:
    parts = [INSTRUCTION]
    for n, hit in enumerate(hits, start=1):
        label = f"{hit.document} › {hit.heading}" if hit.heading else hit.document
        parts.append(f"[{n}] ({label})\n{hit.text}")
    return "\n\n".join(parts)


def inject_context(
    messages: Sequence[Mapping[str, Any]], hits: Sequence[Hit]
) -> list[dict[str, Any]]:
    """A copy of ``messages`` whose system message carries the numbered passages.

    The passages join the first system message (or a new one at the start), because
    several chat templates accept only one system message, at the start.
    """
    out = [dict(m) for m in messages]
    if not hits:
        return out
    context = _context(hits)
    if out and out[0].get("role") == "system" and isinstance(out[0].get("content"), str):
        out[0]["content"] = f"{out[0]['content']}\n\n{context}"
    else:
        out.insert(0, {"role": "system", "content": context})
    return out


def citations_of(hits: Sequence[Hit], snippet_chars: int) -> list[Citation]:
    """One citation per passage, numbered as in the prompt."""
    return [
        Citation(
            index=n,
            collection=h.collection,
            document_id=h.doc_id,
            document=h.document,
            chunk_id=h.chunk_id,
            score=h.score,
            snippet=h.text[:snippet_chars],
        )
        for n, h in enumerate(hits, start=1)
    ]
