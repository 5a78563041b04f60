"""The HTTP server: after startup, the startup heap is frozen out of the collector's way."""

from __future__ import annotations

import asyncio
import gc
import socket

import uvicorn
from fastapi import FastAPI

from luodi.api.drain import Drain
from luodi.api.server import DrainingServer


async def _frozen_after_startup(*, gc_freeze: bool) -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(FastAPI(), host="127.0.0.1", port=port, log_level="warning")
    server = DrainingServer(config, drain=Drain(), drain_timeout_s=1, gc_freeze=gc_freeze)
    gc.unfreeze()
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started
        return gc.get_freeze_count()
    finally:
        gc.unfreeze()  # the test process's heap is not a server's
        server.should_exit = True
        await task


async def test_a_started_server_freezes_its_startup_heap() -> None:
    assert await _frozen_after_startup(gc_freeze=True) > 1000


async def test_the_freeze_can_be_turned_off() -> None:
    assert await _frozen_after_startup(gc_freeze=False) == 0
