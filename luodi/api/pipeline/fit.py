"""Fit: refuse input that cannot fit in the model's context, before Protect scans it."""

from __future__ import annotations

from typing import Any

from luodi.api.pipeline.exchange import ChatWork, CompletionWork, Exchange
from luodi.engine.base import Engine, TextEngine
from luodi.errors import ContextLengthError

__all__ = ["Fit", "refuse_overlong"]


class Fit:
    """A 400 naming both numbers for an over-long prompt, before PII detection runs.

    Detection of a very long input can run past the PII stage's time budget, which
    would answer 503 for what is the client's error. Each completion prompt is its
    own sequence, so each is measured alone; a chat is measured after grounding.
    """

    name = "fit"

    async def run(self, exchange: Exchange) -> None:
        work, engine = exchange.work, exchange.engine
        if engine is None:
            return
        if isinstance(work, ChatWork):
            refuse_overlong(engine, message_texts(work.messages), param="messages")
        elif isinstance(work, CompletionWork):
            for prompt in work.prompts:
                if isinstance(prompt, str):
                    refuse_overlong(engine, [prompt], param="prompt")


def refuse_overlong(engine: Engine, texts: list[str], *, param: str) -> None:
    """Raise ContextLengthError when ``texts`` cannot fit ``engine``'s context.

    Every token covers at least one byte, so input no longer in bytes than the
    context fits and is not tokenized here. An engine without a tokenizer here (an
    upstream) counts its own tokens.
    """
    if not isinstance(engine, TextEngine):
        return
    limit = engine.info.context_length
    if sum(len(text.encode()) for text in texts) <= limit:
        return
    n = sum(len(engine.tokenize(text, add_special=False)) for text in texts)
    if n > limit:
        raise ContextLengthError(
            f"this model's maximum context length is {limit} tokens, but the {param}"
            f" take {n} tokens; shorten them",
            param=param,
        )


def message_texts(messages: list[dict[str, Any]]) -> list[str]:
    """Every text of the messages: contents, text parts, tool-call arguments."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            out.append(content)
        else:
            out.extend(p["text"] for p in content or [] if isinstance(p.get("text"), str))
        calls = m.get("tool_calls") or []
        out.extend(str(c.get("function", {}).get("arguments", "")) for c in calls)
    return out
