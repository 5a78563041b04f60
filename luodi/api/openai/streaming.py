"""Server-sent events in exactly OpenAI's framing: ``data: {json}`` and ``data: [DONE]``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from fastapi.responses import StreamingResponse

from luodi.errors import LuodiError

__all__ = ["sse_response"]


def _frame(payload: dict[str, Any]) -> bytes:
    return (
        b"data: "
        + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        + b"\n\n"
    )


async def _frames(
    chunks: AsyncIterator[dict[str, Any]], on_close: Callable[[], Awaitable[None]] | None
) -> AsyncIterator[bytes]:
    try:
        try:
            async for chunk in chunks:
                yield _frame(chunk)
        except LuodiError as exc:
            # Headers are gone; an error mid-stream travels as an error event, as OpenAI does.
            yield _frame(exc.to_openai())
        yield b"data: [DONE]\n\n"
    finally:
        if on_close is not None:
            # A client that hangs up cancels this task; the audit record is still owed.
            with anyio.CancelScope(shield=True):
                await on_close()


def sse_response(
    chunks: AsyncIterator[dict[str, Any]],
    on_close: Callable[[], Awaitable[None]] | None = None,
) -> StreamingResponse:
    """Stream dict chunks as SSE; closing the connection cancels the generator.

    ``on_close`` runs once the stream ends, however it ends (the audit record).
    """
    return StreamingResponse(
        _frames(chunks, on_close),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
