"""A client that hangs up stops its work at once, streamed or not."""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass

import httpx
import pytest

from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.security import AuditFilter
from tests.conftest import LiveServer
from tests.engine.llamacpp.test_engine import wait_until

pytestmark = pytest.mark.model

ROUTES = pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/v1/completions", {"prompt": "Tell a long story"}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Tell a story"}]}),
    ],
    ids=["completions", "chat"],
)
# 4,000 tokens hold the engine for a minute or more; a hang-up ends the generation
# within a few engine steps, each one token. Counted in tokens, not seconds, so that
# a loaded machine (where one step can take a second) cannot fail a working abort.
MAX_TOKENS = 4000
STEPS_TO_NOTICE = 32

_CANCELLED = re.compile(
    r'^luodi_requests_total\{[^}]*finish_reason="cancelled"[^}]*\} (\S+)$', re.M
)
_GENERATED = re.compile(r"^luodi_generation_tokens_total\{[^}]*\} (\S+)$", re.M)


@dataclass
class Totals:
    """The server's request counters, from ``/metrics``."""

    cancelled: float
    generated: float


async def _totals(http: httpx.AsyncClient) -> Totals:
    text = (await http.get("/metrics")).text
    return Totals(
        cancelled=sum(float(v) for v in _CANCELLED.findall(text)),
        generated=sum(float(v) for v in _GENERATED.findall(text)),
    )


async def _idle_with_cells_freed(engine: LlamaCppEngine) -> None:
    # A backstop only: a lost abort shows in the counts below, not in this wait.
    await wait_until(
        lambda: (
            engine.health()["running"] == 0 and all(p == -1 for p in engine.running_kv_positions())
        ),
        limit_s=120,
    )


@ROUTES
async def test_non_streaming_client_that_hangs_up_stops_its_generation(
    live_server: LiveServer, engine: LlamaCppEngine, route: str, body: dict[str, object]
) -> None:
    body = {"model": live_server.model, "max_tokens": MAX_TOKENS, "ignore_eos": True, **body}
    async with httpx.AsyncClient(
        base_url=live_server.url, headers=live_server.headers, timeout=600
    ) as http:
        before = await _totals(http)
        call = asyncio.create_task(http.post(route, json=body))
        await wait_until(lambda: engine.health()["running"] == 1)
        call.cancel()  # closes the connection: the client is gone
        with contextlib.suppress(asyncio.CancelledError):
            await call
        await _idle_with_cells_freed(engine)
        after = await _totals(http)
    assert after.cancelled == before.cancelled + 1
    assert after.generated - before.generated <= STEPS_TO_NOTICE
    record = live_server.gateway.audit_log.query(AuditFilter(user="test-admin"), limit=10_000)[-1]
    assert record["endpoint"] == route
    assert "cancelled" in (record["reason"] or "")


@ROUTES
async def test_streaming_client_that_hangs_up_stops_its_generation(
    live_server: LiveServer, engine: LlamaCppEngine, route: str, body: dict[str, object]
) -> None:
    body = {
        "model": live_server.model,
        "max_tokens": MAX_TOKENS,
        "ignore_eos": True,
        "stream": True,
        **body,
    }
    async with httpx.AsyncClient(
        base_url=live_server.url, headers=live_server.headers, timeout=600
    ) as http:
        before = await _totals(http)
        seen = 0
        async with http.stream("POST", route, json=body) as resp:
            async for line in resp.aiter_lines():
                seen += line.startswith("data: ")
                if seen == 3:
                    break  # leaving the block closes the connection mid-stream
        await _idle_with_cells_freed(engine)
        after = await _totals(http)
    assert after.cancelled == before.cancelled + 1
    assert after.generated - before.generated <= seen + STEPS_TO_NOTICE
