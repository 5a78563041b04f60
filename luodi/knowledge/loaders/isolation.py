"""Parse a document in a child process with CPU-time and memory limits.

Uploaded files are hostile until parsed: a parser's cost is set by what a file
declares, not by its size. Each document is parsed in a process forked from a
``multiprocessing`` fork server (started once, single-threaded, the loaders already
imported, so a parse costs a fork rather than an interpreter start). The child sets
``RLIMIT_CPU`` and ``RLIMIT_AS`` on itself before it reads a byte, and answers with
JSON over a pipe: the parent never unpickles what a child that parsed a hostile file
sends back. A child that is killed (CPU limit), runs out of memory, crashes or
outlives its wall-clock allowance is a ``DocumentLimitError`` naming the setting.

A child of a fork server prepares itself like a spawned process: when the parent's
``__main__`` is a script (the ``luodi`` console script behind ``luodi serve``), the child
runs that script again unless its own ``__main__`` already names it, and
``set_forkserver_preload(["__main__"])`` does not arrange that on CPython 3.11 (the
server never receives the path). Running luodi's CLI again imported all of luodi: 2-3 s
of CPU per parsed document. So the parent hands the script's path to the fork server in
``LUODI_PARSER_MAIN_PATH`` (set only while it starts), and this module, preloaded there,
records it as the server's ``__main__`` path: children take the script as run and import
nothing more.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import signal
import sys
import threading
from multiprocessing import forkserver, spawn
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from pathlib import PurePath
from typing import Any

from luodi.knowledge.loaders import LOADERS
from luodi.knowledge.loaders.base import load_document
from luodi.knowledge.loaders.errors import DocumentLimitError, DocumentLoadError
from luodi.knowledge.loaders.limits import ParseLimits, check_zip
from luodi.knowledge.types import Block

__all__ = ["parse_isolated", "start_parser"]

_ZIPPED = frozenset({".docx", ".xlsx"})
_CONTEXT: list[BaseContext] = []
_STARTING = threading.Lock()
_MAIN_PATH = "LUODI_PARSER_MAIN_PATH"


def _context() -> BaseContext:
    """The fork-server context, its server started (at the first parse, or by ``start_parser``)."""
    with _STARTING:
        if not _CONTEXT:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["luodi.knowledge.loaders.isolation"])
            _CONTEXT.append(ctx)
        main_path = spawn.get_preparation_data("parser").get("init_main_from_path")
        # Set only while the server starts, which inherits it: no other process sees it.
        if main_path:
            os.environ[_MAIN_PATH] = main_path
        try:
            forkserver.ensure_running()  # at once when it runs; restarts it if it died
        finally:
            os.environ.pop(_MAIN_PATH, None)
    return _CONTEXT[0]


def _adopt_parent_main() -> None:
    """In the fork server: name the parent's main script as this process's ``__main__``.

    A no-op elsewhere: a process started from a script already has its path there.
    """
    path = os.environ.get(_MAIN_PATH)
    main = sys.modules.get("__main__")
    if path and main is not None and getattr(main, "__file__", None) is None:
        main.__file__ = path


def start_parser() -> None:
    """Start the fork server now (about a second), not at the first document."""
    _context()


def _child(conn: Connection, name: str, data: bytes, limits: ParseLimits) -> None:
    """Runs in the child: limit itself, parse, answer with JSON."""
    cpu = limits.cpu_s
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    answer: dict[str, Any]
    try:
        blocks = load_document(name, data, LOADERS, limits)
        answer = {"blocks": [[b.kind, b.text, b.level] for b in blocks]}
    except DocumentLoadError as exc:
        answer = {"error": exc.message, "code": exc.code}
    except MemoryError:
        answer = {"error": _memory_message(name, limits), "code": DocumentLimitError.default_code}
    conn.send_bytes(json.dumps(answer).encode())
    conn.close()


def _memory_message(name: str, limits: ParseLimits) -> str:
    return f"{name}: needs more memory than knowledge.parse_memory_mb={limits.memory_mb}"


def parse_isolated(name: str, data: bytes, limits: ParseLimits) -> list[Block]:
    """Blocks of ``name`` parsed in a limited child process.

    Raises:
        DocumentLimitError: the file is over a limit, or its parser used more CPU time
            or memory than allowed; the message names the setting.
        DocumentLoadError: the file cannot be read as its format.
    """
    suffix = PurePath(name).suffix.lower()
    if suffix not in LOADERS:
        raise DocumentLoadError(f"{name}: unsupported file type {suffix or '(none)'}")
    if suffix in _ZIPPED:
        try:
            check_zip(data, limits)
        except DocumentLoadError as exc:
            raise type(exc)(f"{name}: {exc.message}") from exc
    ctx = _context()
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, name, data, limits), daemon=True)  # type: ignore[attr-defined]
    child.start()
    send.close()
    payload: bytes | None = None
    try:
        # CPU time cannot exceed wall time, so twice the CPU limit means it was stuck.
        if receive.poll(limits.cpu_s * 2 + 5):
            try:
                payload = receive.recv_bytes(int(limits.max_unzipped_mb * 2**20) + 2**24)
            except (EOFError, OSError):
                payload = None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()
    if payload is None:
        if child.exitcode in (-signal.SIGXCPU, -signal.SIGKILL, None):
            raise DocumentLimitError(
                f"{name}: parsing took more than knowledge.parse_cpu_s={limits.cpu_s} seconds"
            )
        if child.exitcode in (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS):
            # lxml and zlib abort rather than raise when an allocation fails.
            raise DocumentLimitError(_memory_message(name, limits))
        raise DocumentLoadError(
            f"{name}: the parser process ended with exit code {child.exitcode} before "
            "answering (a script that ingests must guard its entry point with "
            "if __name__ == '__main__': multiprocessing starts the parser from it)"
        )
    answer = json.loads(payload)
    if "error" in answer:
        error = (
            DocumentLimitError
            if answer.get("code") == DocumentLimitError.default_code
            else (DocumentLoadError)
        )
        raise error(str(answer["error"]))
    return [Block(kind, text, level) for kind, text, level in answer["blocks"]]


_adopt_parent_main()
