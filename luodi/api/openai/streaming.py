"""Server-sent events in exactly OpenAI's framing: ``data: {json}`` and ``data: [DONE]``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from luodi.errors import LuodiError

__all__ = ["sse_response"]


def _frame(payload: dict[str, Any]) -> bytes:
    return (
        b"data: "
        + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        + b"\n\n"
    )


async def _frames(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield _frame(chunk)
    except LuodiError as exc:
        # Headers are gone; an error mid-stream travels as an error event, as OpenAI does.
        yield _frame(exc.to_openai())
    yield b"data: [DONE]\n\n"


def sse_response(chunks: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    """Stream dict chunks as SSE; closing the connection cancels the generator."""
    return StreamingResponse(
        _frames(chunks),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
