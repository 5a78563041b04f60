"""Usage that cannot be dodged: dropped streams are charged what they were sent,
and concurrent requests cannot all pass on one token budget."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from luodi.security import AuditFilter, Limits
from tests.conftest import LiveServer, make_key

pytestmark = pytest.mark.model


async def _records(server: LiveServer, user: str, n: int) -> list[dict[str, object]]:
    """The user's audit records, once ``n`` are written (the writer batches)."""
    for _ in range(200):
        records = server.gateway.audit_log.query(AuditFilter(user=user), limit=100)
        if len(records) >= n:
            return records
        await asyncio.sleep(0.05)
    raise AssertionError(f"{user} has {len(records)} audit records, expected {n}")


async def _drop_after(server: LiveServer, key: str, chunks: int) -> None:
    """Stream a long answer without max_tokens and hang up after ``chunks`` chunks."""
    body = {
        "model": server.model,
        "messages": [{"role": "user", "content": "Count to a thousand."}],
        "stream": True,
        "ignore_eos": True,
    }
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=60) as http,
        http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as resp,
    ):
        assert resp.status_code == 200
        seen = 0
        async for line in resp.aiter_lines():
            compact = line.replace(" ", "")
            if '"content":"' in compact and '"content":""' not in compact:
                seen += 1
                if seen >= chunks:
                    return  # leaving the block closes the connection


async def test_a_dropped_stream_is_charged_and_audited_with_what_it_was_sent(
    live_server: LiveServer,
) -> None:
    user = "usage-dropper"
    key = make_key(live_server.gateway, user, ["developer"], limits=Limits(tokens_per_day=200))
    await _drop_after(live_server, key, 40)
    (record,) = await _records(live_server, user, 1)
    assert record["completion_tokens"] >= 40  # was 0: dropped streams went unbilled
    assert record["prompt_tokens"] > 0
    # 40 tokens of answer and the prompt are spent: the rest of the budget cannot
    # hold a request that reserves 180 more.
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as http:
        resp = await http.post(
            "/v1/chat/completions",
            json={
                "model": live_server.model,
                "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 180,
            },
            headers={"Authorization": f"Bearer {key}"},
        )
    assert resp.status_code == 429
    assert "tokens per day" in resp.json()["error"]["message"]


async def test_concurrent_requests_reserve_their_max_tokens(live_server: LiveServer) -> None:
    user = "usage-burst"
    key = make_key(live_server.gateway, user, ["developer"], limits=Limits(tokens_per_day=100))
    body = {
        "model": live_server.model,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 40,
    }
    async with httpx.AsyncClient(base_url=live_server.url, timeout=120) as http:
        responses = await asyncio.gather(
            *(
                http.post(
                    "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
                )
                for _ in range(6)
            )
        )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) <= 2 and codes.count(429) >= 4  # was 6 x 200 on a 100-token budget
    records = await _records(live_server, user, 6)
    allowed = [r for r in records if r["decision"] == "allowed"]
    assert sum(int(r["prompt_tokens"]) + int(r["completion_tokens"]) for r in allowed) <= 100
