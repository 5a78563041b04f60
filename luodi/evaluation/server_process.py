"""A ``luodi serve`` subprocess on a free loopback port, for benchmarks and tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from types import TracebackType

import httpx

__all__ = ["LUODI", "ServerProcess", "create_key"]

LUODI = [sys.executable, "-m", "luodi.cli"]


def create_key(
    env: Mapping[str, str], user: str, role: str, *, luodi: Sequence[str] = LUODI
) -> str:
    """Create ``user`` with ``role`` and a key for it through the CLI; returns the secret.

    ``luodi`` is the command that runs the CLI: this interpreter's by default, another
    installation's (``/some/venv/bin/luodi``) to test that one.
    """
    subprocess.run(
        [*luodi, "users", "create", user, "--role", role],
        env=dict(env),
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [*luodi, "keys", "create", "--user", user],
        env=dict(env),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return next(word for word in out.split() if word.startswith("sk-luodi-"))


class ServerProcess:
    """Starts ``luodi serve`` with ``env`` and waits until ``/health`` answers 200.

    ``luodi`` is the command that runs the CLI, as in ``create_key``.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        args: Sequence[str] = (),
        *,
        start_timeout_s: float = 180.0,
        luodi: Sequence[str] = LUODI,
    ) -> None:
        self._env = {**os.environ, **env}
        self._luodi = list(luodi)
        self._args = list(args)
        self._timeout = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> ServerProcess:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        self.proc = subprocess.Popen(
            [*self._luodi, "serve", "--port", str(port), *self._args],
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"luodi serve did not start (exit {self.proc.returncode})")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
