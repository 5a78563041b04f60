"""A small OpenAI-compatible server standing in for vLLM or a cloud API, with faults.

It speaks vLLM's streaming dialect: a first chunk with only the role, one chunk
per word, ``reasoning_content`` deltas when thinking is on, ``tool_calls`` deltas
when tools are given, a usage chunk with empty ``choices`` when
``stream_options.include_usage`` is set, then ``data: [DONE]``. The reply echoes
the last user message, so a test can see what reached the upstream.

Tests need only ``StandIn.url``; faults are set on ``StandIn.faults`` (or over
HTTP with ``POST /_standin/faults``), and ``down()``/``up()`` stop and restart the
server on the same port. ``StandInProcess`` runs one in a process of its own, so a
test can ``kill -9`` it the way a replica dies: ``python standin.py NAME PORT``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    max_model_len: int | None = None
    """Reported in ``GET /v1/models`` as vLLM does, when set."""
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def up(self) -> None:
        """Start (or restart) serving on the same port."""
        if self.port == 0:
            self.port = _free_port()
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


@dataclass
class StandInProcess:
    """A stand-in in a child process: ``kill()`` is a ``kill -9``, not a clean stop."""

    name: str
    port: int = 0
    faults: Faults = field(default_factory=Faults)
    """Applied at each ``up()``; change a running one with ``set_faults``."""
    _process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def up(self) -> None:
        """Start (or restart) the process on the same port; returns once it accepts."""
        if self.port == 0:
            self.port = _free_port()
        self._process = subprocess.Popen(
            [sys.executable, __file__, self.name, str(self.port), json.dumps(asdict(self.faults))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:  # bounded wait for a server in another process
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise RuntimeError(f"stand-in process {self.name} did not start") from None
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the process dies mid-whatever, its sockets closed by the kernel."""
        if self._process is not None and self._process.poll() is None:
            os.kill(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
        self._process = None

    def set_faults(self, **faults: Any) -> None:
        """Replace the running process's faults (unnamed ones go back to off)."""
        self.faults = Faults(**faults)
        import httpx  # only the parent process needs a client

        httpx.post(f"http://127.0.0.1:{self.port}/_standin/faults", json=faults).raise_for_status()


class ResettingServer:
    """A TCP listener that reads each request's head, then resets the connection.

    What a client meets on a connection whose server died with the request unread
    in its buffers: ``ECONNRESET`` before any response byte (httpx's ``ReadError``).
    """

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.resets = 0
        self._thread = threading.Thread(target=self._serve, name="resetting", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                # Linger on, zero seconds: close() sends RST instead of FIN.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.resets += 1

    def close(self) -> None:
        self._sock.close()


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
        entry: dict[str, Any] = {"id": standin.name, "object": "model"}
        if standin.max_model_len is not None:
            entry["max_model_len"] = standin.max_model_len
        body = {"object": "list", "data": [{"id": "other", "object": "model"}, entry]}
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


if __name__ == "__main__":
    _name, _port, _faults = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    uvicorn.run(
        _app(StandIn(_name, _port, Faults(**_faults))),
        host="127.0.0.1",
        port=_port,
        log_level="critical",
        lifespan="off",
    )
