"""Stop a non-streaming request's work when its client hangs up.

A streamed answer notices a hang-up by itself: the next write fails and its
generator is closed, which aborts the generation. A non-streaming handler writes
nothing until the end, so without a watch it would decode to the end for nobody,
holding batch slots and KV cells. ``cancel_on_disconnect`` races the handler
against the client's ``http.disconnect`` (as vLLM's ``with_cancellation`` does)
and cancels the handler the moment the client goes; the handler's own clean-up
(closing its engine streams, the audit record) runs on that cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import ParamSpec

from fastapi import Request, Response

__all__ = ["CLIENT_CLOSED_REQUEST", "cancel_on_disconnect"]

P = ParamSpec("P")

CLIENT_CLOSED_REQUEST = 499
"""nginx's status for a request whose client went away; nobody reads it."""


async def _disconnected(request: Request) -> None:
    # FastAPI has read the body already, so the next ASGI message is the hang-up
    # (or, once the response is sent, the connection's end).
    while (await request.receive())["type"] != "http.disconnect":
        pass


def cancel_on_disconnect(
    handler: Callable[P, Awaitable[Response]],
) -> Callable[P, Awaitable[Response]]:
    """Run a route handler (taking ``request: Request``) until its client disconnects."""

    @functools.wraps(handler)
    async def watched(*args: P.args, **kwargs: P.kwargs) -> Response:
        request = kwargs["request"]
        assert isinstance(request, Request), "the handler must take request: Request"
        work = asyncio.ensure_future(handler(*args, **kwargs))
        watch = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # A streaming response listens for the hang-up itself from here on.
            watch.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
        if work.cancelled():
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        return work.result()

    # Resolved here: FastAPI reads the signature against the wrapper's module otherwise.
    watched.__signature__ = inspect.signature(handler, eval_str=True)  # type: ignore[attr-defined]
    return watched
