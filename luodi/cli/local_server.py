"""A luodi server in a background thread on an ephemeral loopback port (``luodi chat --local``)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType

from luodi.config import Settings
from luodi.errors import ServiceUnavailableError
from luodi.security.client_address import UVICORN_PROXY_OPTIONS

__all__ = ["LocalServer"]


class LocalServer:
    """Runs the full API in-process, so a terminal chat needs no separate ``luodi serve``.

    It binds 127.0.0.1 only; the model loads inside, as ``luodi serve`` would load it.
    """

    def __init__(self, settings: Settings, *, start_timeout_s: float = 300.0) -> None:
        self._settings = settings
        self._timeout = start_timeout_s
        self._thread: threading.Thread | None = None
        self._server: object | None = None
        self._error: BaseException | None = None
        self.url = ""

    def __enter__(self) -> LocalServer:
        import uvicorn

        from luodi.api.app import create_app, load_embedded

        embedded = load_embedded(self._settings)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            create_app(self._settings, embedded=embedded),
            host="127.0.0.1",
            port=port,
            log_level="error",
            **UVICORN_PROXY_OPTIONS,
        )
        server = uvicorn.Server(config)
        self._server = server

        def run() -> None:
            try:
                server.run()
            except BaseException as exc:  # surfaced to the caller by the start-up wait
                self._error = exc

        self._thread = threading.Thread(target=run, name="luodi-local-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServiceUnavailableError(
                    f"the in-process server did not start: {self._error or 'model load failed'}"
                )
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.should_exit = True  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(timeout=30)


def local_settings(base: Settings, model: Path | None) -> Settings:
    """Settings for an in-process chat: loopback only, no key needed from its own user."""
    data = base.model_dump()
    data["server"]["host"] = "127.0.0.1"
    data["security"]["auth_enabled"] = False
    if model is not None:
        data["engine"]["model"] = model
    return type(base).model_validate(data)
