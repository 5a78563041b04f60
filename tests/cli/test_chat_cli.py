"""``luodi chat`` against a small OpenAI-compatible SSE server on loopback."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import typer
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from typer.testing import CliRunner

from luodi.cli.chat import chat


@dataclass
class StandIn:
    """Streams ``reasoning_content`` when thinking is on, then echoes the last user turn."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)


def _chunk(delta: dict[str, Any]) -> str:
    body = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def make_app(state: StandIn) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "stand-in", "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Response:
        body = await request.json()
        state.received.append(body)
        if request.headers.get("authorization") == "Bearer wrong":
            return JSONResponse(
                {"error": {"message": "Invalid API key", "type": "authentication_error"}},
                status_code=401,
            )
        last = body["messages"][-1]["content"]
        if last == "please fail":
            error = {"message": "model overloaded", "type": "server_error", "param": None}
            return JSONResponse({"error": error}, status_code=503)
        thinking = (body.get("chat_template_kwargs") or {}).get("enable_thinking", False)

        async def events() -> AsyncIterator[str]:
            yield _chunk({"role": "assistant"})
            if thinking:
                yield _chunk({"reasoning_content": "pondering "})
                yield _chunk({"reasoning_content": "deeply"})
            for word in f"echo({len(body['messages'])}): {last}".split(" "):
                yield _chunk({"content": word + " "})
            if last == "break midway":
                yield 'data: {"error": {"message": "generation failed"}}\n\n'
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    state = StandIn()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections queue here until uvicorn accepts: no start-up wait needed
    state.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(make_app(state), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield state
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def run_chat(url: str, stdin: str, *args: str) -> Any:
    app = typer.Typer()
    app.command()(chat)
    return CliRunner().invoke(app, ["--url", url, *args], input=stdin)


def test_chat_streams_answers_and_keeps_history(standin: StandIn) -> None:
    standin.received.clear()
    result = run_chat(standin.url, "hello\nsecond question\n")
    assert result.exit_code == 0, result.output
    assert "echo(1): hello" in result.output
    assert "echo(3): second question" in result.output
    assert [m["role"] for m in standin.received[1]["messages"]] == ["user", "assistant", "user"]
    assert standin.received[1]["messages"][1]["content"].startswith("echo(1): hello")
    assert all(b["stream"] is True and b["model"] == "stand-in" for b in standin.received)


def test_reset_forgets_the_conversation(standin: StandIn) -> None:
    standin.received.clear()
    result = run_chat(standin.url, "one\n/reset\ntwo\n")
    assert result.exit_code == 0, result.output
    assert "history cleared" in result.output
    assert [m["content"] for m in standin.received[1]["messages"]] == ["two"]


def test_system_prompt_leads_every_request(standin: StandIn) -> None:
    standin.received.clear()
    result = run_chat(standin.url, "/system 你是银行客服\nhi\n", "--model", "m1")
    assert result.exit_code == 0, result.output
    assert standin.received[0]["messages"][0] == {"role": "system", "content": "你是银行客服"}
    assert standin.received[0]["model"] == "m1"


def test_think_switch_is_sent_and_reasoning_shown_apart(standin: StandIn) -> None:
    standin.received.clear()
    result = run_chat(standin.url, "/think on\nwhy?\n/think off\nand now?\n")
    assert result.exit_code == 0, result.output
    assert standin.received[0]["chat_template_kwargs"] == {"enable_thinking": True}
    assert standin.received[1]["chat_template_kwargs"] == {"enable_thinking": False}
    assert "thinking: pondering deeply\necho(1): why?" in result.output
    # Reasoning is never kept as part of the answer in history.
    assert "pondering" not in json.dumps(standin.received[1]["messages"])


def test_exit_ends_the_session_before_later_lines(standin: StandIn) -> None:
    standin.received.clear()
    result = run_chat(standin.url, "first\n/exit\nnever sent\n")
    assert result.exit_code == 0
    assert len(standin.received) == 1


def test_api_key_comes_from_the_environment(standin: StandIn) -> None:
    app = typer.Typer()
    app.command()(chat)
    result = CliRunner().invoke(
        app, ["--url", standin.url, "--model", "m"], input="x\n", env={"LUODI_API_KEY": "wrong"}
    )
    assert result.exit_code == 1
    assert "Invalid API key (401)" in result.output


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("please fail\n", "error: model overloaded (503)"),
        ("break midway\n", "error: generation failed"),
    ],
    ids=["error-status", "error-event-in-stream"],
)
def test_server_errors_end_with_one_clear_line(standin: StandIn, stdin: str, message: str) -> None:
    result = run_chat(standin.url, stdin, "--model", "m")
    assert result.exit_code == 1
    assert message in result.output


def test_unreachable_server_is_one_line_and_nonzero() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    result = run_chat(f"http://127.0.0.1:{port}", "hi\n")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach")
