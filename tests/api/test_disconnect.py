"""A client that hangs up stops its work at once, streamed or not."""

from __future__ import annotations

import asyncio
import contextlib
import re

import httpx
import pytest

from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.security import AuditFilter
from tests.conftest import LiveServer
from tests.engine.llamacpp.test_engine import wait_until

pytestmark = pytest.mark.model

_CANCELLED = re.compile(
    r'^luodi_requests_total\{[^}]*finish_reason="cancelled"[^}]*\} (\S+)$', re.M
)


async def _cancelled(http: httpx.AsyncClient) -> float:
    text = (await http.get("/metrics")).text
    return sum(float(v) for v in _CANCELLED.findall(text))


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/v1/completions", {"prompt": "Tell a long story"}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Tell a story"}]}),
    ],
    ids=["completions", "chat"],
)
async def test_non_streaming_client_that_hangs_up_stops_its_generation(
    live_server: LiveServer, engine: LlamaCppEngine, route: str, body: dict[str, object]
) -> None:
    # 4,000 tokens would hold the engine for minutes if nobody noticed the hang-up.
    body = {"model": live_server.model, "max_tokens": 4000, "ignore_eos": True, **body}
    async with httpx.AsyncClient(
        base_url=live_server.url, headers=live_server.headers, timeout=600
    ) as http:
        before = await _cancelled(http)
        call = asyncio.create_task(http.post(route, json=body))
        await wait_until(lambda: engine.health()["running"] == 1)
        call.cancel()  # closes the connection: the client is gone
        with contextlib.suppress(asyncio.CancelledError):
            await call
        # Within a few engine steps: the sequence ends as cancelled and frees its cells.
        await wait_until(
            lambda: (
                engine.health()["running"] == 0
                and all(p == -1 for p in engine.running_kv_positions())
            ),
            limit_s=5,
        )
        assert await _cancelled(http) == before + 1
    record = live_server.gateway.audit_log.query(AuditFilter(user="test-admin"), limit=10_000)[-1]
    assert record["endpoint"] == route
    assert "cancelled" in (record["reason"] or "")
