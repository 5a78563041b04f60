"""``luodi chat``: a streaming, multi-turn terminal chat against an OpenAI-compatible server.

Reasoning (``reasoning_content``) is shown dimmed, apart from the answer. Lines
starting with ``/`` are commands: ``/reset``, ``/system TEXT``, ``/think on|off``,
``/exit``. Input is read line by line, so a conversation can be piped in.

The server is reached through a :class:`ChatTransport`; :class:`HttpTransport`
speaks HTTP + SSE. An in-process engine plugs in as another transport.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol, TextIO

import httpx
import typer
from rich.console import Console
from rich.text import Text

from luodi.errors import LuodiError, UpstreamError

__all__ = ["ChatServerError", "ChatSession", "ChatTransport", "HttpTransport", "chat"]


class ChatServerError(UpstreamError):
    """The chat server is unreachable or answered with an error."""


class ChatTransport(Protocol):
    """How the terminal chat reaches a model."""

    def default_model(self) -> str:
        """The model to use when none is given (the first one listed)."""
        ...

    def stream(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Send a streaming ``/v1/chat/completions`` body; yield each chunk object.

        Raises:
            ChatServerError: the server cannot be reached or answers with an error.
        """
        ...


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            return f"{error['message']} ({response.status_code})"
    except (json.JSONDecodeError, AttributeError):
        pass
    return f"HTTP {response.status_code}: {response.text[:200].strip()}"


@dataclass
class HttpTransport:
    """An OpenAI-compatible server over HTTP, streamed with server-sent events."""

    url: str
    api_key: str | None = None
    timeout: float = 600.0

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def default_model(self) -> str:
        try:
            response = httpx.get(
                f"{self.url}/v1/models", headers=self._headers(), timeout=min(self.timeout, 30)
            )
        except httpx.HTTPError as exc:
            raise ChatServerError(f"cannot reach {self.url}: {exc}") from exc
        if response.status_code != 200:
            raise ChatServerError(f"{self.url} refused to list models: {_error_message(response)}")
        try:
            return str(response.json()["data"][0]["id"])
        except (KeyError, IndexError, TypeError, json.JSONDecodeError) as exc:
            raise ChatServerError(f"{self.url} lists no models") from exc

    def stream(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        try:
            with httpx.stream(
                "POST",
                f"{self.url}/v1/chat/completions",
                json=body,
                headers=self._headers(),
                timeout=self.timeout,
            ) as response:
                if response.status_code != 200:
                    response.read()
                    raise ChatServerError(_error_message(response))
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[len("data:") :].strip()
                    if data == "[DONE]":
                        return
                    try:
                        chunk = json.loads(data)
                    except json.JSONDecodeError as exc:
                        raise ChatServerError(
                            f"the server sent a malformed event: {data!r}"
                        ) from exc
                    if isinstance(chunk, dict) and "error" in chunk:
                        message = (chunk["error"] or {}).get("message", "unknown error")
                        raise ChatServerError(str(message))
                    yield chunk
        except httpx.HTTPError as exc:
            raise ChatServerError(f"cannot reach {self.url}: {exc}") from exc


@dataclass
class ChatSession:
    """One conversation: its history, system prompt and thinking switch."""

    transport: ChatTransport
    model: str
    out: Console
    system: str | None = None
    thinking: bool | None = None
    """``None`` leaves the server's default; otherwise sent as ``enable_thinking``."""
    extra: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, str]] = field(default_factory=list)

    def messages(self) -> list[dict[str, str]]:
        """What the next request sends: the system prompt, then the turns so far."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + self.history

    def handle(self, line: str) -> bool:
        """Act on one input line; return False when the session should end.

        Raises:
            ChatServerError: the server failed; the turn is not kept in history.
        """
        text = line.strip()
        if not text:
            return True
        if text.startswith("/"):
            return self._command(text)
        self.history.append({"role": "user", "content": text})
        try:
            answer = self._ask()
        except ChatServerError:
            self.history.pop()
            raise
        self.history.append({"role": "assistant", "content": answer})
        return True

    def _command(self, text: str) -> bool:
        name, _, arg = text.partition(" ")
        arg = arg.strip()
        if name in ("/exit", "/quit"):
            return False
        if name == "/reset":
            self.history.clear()
            self.out.print("[dim]history cleared[/dim]")
        elif name == "/system":
            self.system = arg or None
            self.out.print(f"[dim]system prompt {'set' if arg else 'cleared'}[/dim]")
        elif name == "/think" and arg in ("on", "off"):
            self.thinking = arg == "on"
            self.out.print(f"[dim]thinking {arg}[/dim]")
        else:
            self.out.print(
                "[dim]commands: /reset, /system TEXT, /think on|off, /exit[/dim]", highlight=False
            )
        return True

    def _ask(self) -> str:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages(),
            "stream": True,
            **self.extra,
        }
        if self.thinking is not None:
            body["chat_template_kwargs"] = {"enable_thinking": self.thinking}
        answer: list[str] = []
        in_reasoning = False
        for chunk in self.transport.stream(body):
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                reasoning = delta.get("reasoning_content")
                if reasoning:
                    if not in_reasoning:
                        self.out.print(Text("thinking: ", style="dim bold"), end="")
                        in_reasoning = True
                    self.out.print(Text(reasoning, style="dim italic"), end="")
                content = delta.get("content")
                if content:
                    if in_reasoning:
                        self.out.print()
                        in_reasoning = False
                    answer.append(content)
                    self.out.print(Text(content), end="")
        self.out.print()
        return "".join(answer)


def _lines(stream: TextIO, out: Console, interactive: bool) -> Iterator[str]:
    while True:
        if interactive:
            out.print("[bold cyan]you>[/bold cyan] ", end="")
        line = stream.readline()
        if not line:
            return
        yield line


def chat(
    url: Annotated[
        str, typer.Option(help="Base URL of the OpenAI-compatible server.")
    ] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="LUODI_API_KEY", help="API key (also LUODI_API_KEY).", show_default=False
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model name; the server's first model if omitted.")
    ] = None,
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
    think: Annotated[
        bool | None,
        typer.Option(
            "--think/--no-think", help="Ask for thinking on or off (Qwen3).", show_default=False
        ),
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Most tokens per answer.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature.")] = None,
    local: Annotated[
        bool,
        typer.Option("--local", help="Run the engine in this process instead of calling a server."),
    ] = False,
    model_file: Annotated[
        Path | None, typer.Option(help="With --local: the GGUF to load (default: bundled).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="With --local: YAML config file.")
    ] = None,
) -> None:
    """Chat with a model in the terminal, streaming; /reset, /system TEXT, /think on|off, /exit."""
    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    with contextlib.ExitStack() as stack:
        if local:
            from luodi.cli.local_server import LocalServer, local_settings
            from luodi.config import load_settings

            try:
                server = stack.enter_context(
                    LocalServer(local_settings(load_settings(config), model_file))
                )
            except LuodiError as exc:
                err.print(f"[red]error:[/red] {exc.message}", soft_wrap=True)
                raise typer.Exit(1) from exc
            url, api_key = server.url, None
        _run_chat(out, err, url, api_key, model, system, think, max_tokens, temperature)


def _run_chat(
    out: Console,
    err: Console,
    url: str,
    api_key: str | None,
    model: str | None,
    system: str | None,
    think: bool | None,
    max_tokens: int | None,
    temperature: float | None,
) -> None:
    transport = HttpTransport(url.rstrip("/"), api_key)
    extra: dict[str, Any] = {}
    if max_tokens is not None:
        extra["max_tokens"] = max_tokens
    if temperature is not None:
        extra["temperature"] = temperature
    try:
        session = ChatSession(
            transport,
            model or transport.default_model(),
            out,
            system=system,
            thinking=think,
            extra=extra,
        )
        for line in _lines(sys.stdin, out, sys.stdin.isatty()):
            if not session.handle(line):
                break
    except ChatServerError as exc:
        err.print(f"[red]error:[/red] {exc.message}", soft_wrap=True)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        out.print()
