"""A small OpenAI-compatible server standing in for vLLM or a cloud API, with faults.

It speaks vLLM's streaming dialect: a first chunk with only the role, one chunk
per word, ``reasoning_content`` deltas when thinking is on, ``tool_calls`` deltas
when tools are given, a usage chunk with empty ``choices`` when
``stream_options.include_usage`` is set, then ``data: [DONE]``. The reply echoes
the last user message, so a test can see what reached the upstream.

Tests need only ``StandIn.url``; faults are set on ``StandIn.faults`` (or over
HTTP with ``POST /_standin/faults``), and ``down()``/``up()`` stop and restart the
server on the same port.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse


@dataclass
class Faults:
    """What the stand-in does wrong; all off by default."""

    first_token_delay_s: float = 0.0
    token_delay_s: float = 0.0
    fail_status: int | None = None
    """Answer every generation with this HTTP status."""
    fail_next: int = 0
    """Answer the next N generations with ``fail_status`` (or 500), then recover."""
    drop_after_tokens: int | None = None
    """Close the connection abruptly after this many content chunks (0: before any)."""
    error_after_tokens: int | None = None
    """Send an OpenAI error chunk after this many content chunks."""
    probe_delay_s: float = 0.0
    """Delay of GET /v1/models (the health probe), to fake network latency."""
    probe_status: int = 200


class _Dropped(Exception):
    """Raised inside the response stream to cut the connection."""


@dataclass
class StandIn:
    """One stand-in server on 127.0.0.1; ``url`` ends in ``/v1``."""

    name: str
    port: int = 0
    faults: Faults = field(default_factory=Faults)
    received: list[dict[str, Any]] = field(default_factory=list)
    """Every generation body received, in order."""
    disconnected: threading.Event = field(default_factory=threading.Event)
    """Set when a client went away before its stream finished."""
    completed: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def up(self) -> None:
        """Start (or restart) serving on the same port."""
        if self.port == 0:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            _app(self),
            host="127.0.0.1",
            port=self.port,
            log_level="critical",
            timeout_graceful_shutdown=1,
            lifespan="off",
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name=f"standin-{self.name}", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:  # bounded wait for a server in another thread
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"stand-in {self.name} did not start")
            time.sleep(0.005)
        self._server, self._thread = server, thread

    def down(self) -> None:
        """Stop serving: connections are refused until ``up()``."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(timeout=10)
        self._server = self._thread = None

    def wait_disconnect(self, timeout: float = 5.0) -> bool:
        return self.disconnected.wait(timeout)


def _last_user_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        for message in reversed(body["messages"]):
            if message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else json.dumps(content)
        return ""
    prompt = body.get("prompt", "")
    return prompt if isinstance(prompt, str) else " ".join(map(str, prompt))


def _app(standin: StandIn) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> Response:
        if standin.faults.probe_delay_s:
            await asyncio.sleep(standin.faults.probe_delay_s)
        body = {"object": "list", "data": [{"id": standin.name, "object": "model"}]}
        return JSONResponse(body, status_code=standin.faults.probe_status)

    @app.post("/_standin/faults")
    async def set_faults(request: Request) -> Response:
        standin.faults = Faults(**await request.json())
        return JSONResponse(asdict(standin.faults))

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await _generate(standin, request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await _generate(standin, request, chat=False)

    return app


async def _generate(standin: StandIn, request: Request, *, chat: bool) -> Response:
    body = await request.json()
    standin.received.append(body)
    faults = standin.faults
    if faults.fail_next > 0 or faults.fail_status is not None:
        status = faults.fail_status or 500
        if faults.fail_next > 0:
            faults.fail_next -= 1
        kind = "BadRequestError" if status < 500 else "InternalServerError"
        error = {"message": f"{standin.name} fails on purpose", "type": kind, "code": status}
        return JSONResponse({"error": error}, status_code=status)
    return StreamingResponse(_stream(standin, request, body, chat), media_type="text/event-stream")


def _chunk(standin: StandIn, chat: bool, **choice: Any) -> str:
    payload = {
        "id": "cmpl-standin",
        "object": "chat.completion.chunk" if chat else "text_completion",
        "model": standin.name,
        "choices": [{"index": 0, **choice}],
    }
    return f"data: {json.dumps(payload)}\n\n"


async def _stream(
    standin: StandIn, request: Request, body: dict[str, Any], chat: bool
) -> AsyncIterator[str]:
    faults = standin.faults
    all_words = [f"[{standin.name}]", *_last_user_text(body).split()]
    words = all_words[: int(body.get("max_tokens") or 16)]
    truncated = len(words) < len(all_words)
    thinking = bool(
        body.get("enable_thinking")
        or (body.get("chat_template_kwargs") or {}).get("enable_thinking")
    )
    tools = body.get("tools") or []
    finished = dropped = False
    sent = 0
    try:
        if chat:
            yield _chunk(standin, chat, delta={"role": "assistant", "content": ""})
        if faults.first_token_delay_s:
            await asyncio.sleep(faults.first_token_delay_s)
        pieces: list[dict[str, Any]] = []
        if chat and thinking:
            pieces += [{"reasoning_content": "Let me think. "}, {"reasoning_content": "Done."}]
        if chat and tools:
            name = tools[0]["function"]["name"]
            pieces += [
                {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                 "function": {"name": name, "arguments": ""}}]},
                {"tool_calls": [{"index": 0, "function": {"arguments": '{"q": '}}]},
                {"tool_calls": [{"index": 0, "function": {"arguments": '"x"}'}}]},
            ]  # fmt: skip
        else:
            pieces += [{"content": w + " "} for w in words]
        for i, piece in enumerate(pieces):
            if faults.drop_after_tokens is not None and sent >= faults.drop_after_tokens:
                dropped = True
                raise _Dropped(standin.name)
            if faults.error_after_tokens is not None and sent >= faults.error_after_tokens:
                yield f"data: {json.dumps({'error': {'message': 'boom', 'code': 500}})}\n\n"
                yield "data: [DONE]\n\n"
                finished = True
                return
            if i and faults.token_delay_s:
                await asyncio.sleep(faults.token_delay_s)
            if await request.is_disconnected():
                return
            last = i == len(pieces) - 1
            reason = None
            if last:
                reason = "tool_calls" if tools and chat else ("length" if truncated else "stop")
            if chat:
                yield _chunk(standin, chat, delta=piece, finish_reason=reason)
            else:
                yield _chunk(standin, chat, text=piece.get("content", ""), finish_reason=reason)
            sent += 1
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {
                "prompt_tokens": len(_last_user_text(body).split()),
                "completion_tokens": sent,
                "total_tokens": len(_last_user_text(body).split()) + sent,
            }
            yield f"data: {json.dumps({'id': 'cmpl-standin', 'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"
        finished = True
        standin.completed += 1
    finally:
        if not finished and not dropped:
            standin.disconnected.set()
