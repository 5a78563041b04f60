"""A luodi gateway in front of two replicas, one of them killed with SIGKILL under
concurrent OpenAI clients: what each client sees, and what the audit log keeps."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from luodi.api.app import create_app
from luodi.config import Settings, StorageSettings
from luodi.config.routing import RoutingSettings
from luodi.engine.router import Router
from luodi.security import AuditFilter, Gateway
from tests.conftest import make_key, served
from tests.engine.llamacpp.test_engine import wait_until
from tests.engine.standin import Faults, StandInProcess

MODEL = "qwen3-14b"


@dataclass
class Front:
    url: str
    key: str
    gateway: Gateway
    replicas: dict[str, StandInProcess]
    router: Router

    def client(self) -> openai.AsyncOpenAI:
        # No SDK retries: each test looks at the first answer the gateway gives.
        return openai.AsyncOpenAI(
            base_url=f"{self.url}/v1", api_key=self.key, max_retries=0, timeout=60
        )

    def records(self) -> list[dict[str, Any]]:
        return [
            r
            for r in self.gateway.audit_log.query(AuditFilter(user="caller"), limit=10_000)
            if r["endpoint"] == "/v1/chat/completions"
        ]


@pytest.fixture
def replicas() -> Iterator[dict[str, StandInProcess]]:
    # Slow enough that answers are still coming when a is killed (about 5 s each).
    pair = {name: StandInProcess(name, faults=Faults(token_delay_s=0.6)) for name in "ab"}
    for process in pair.values():
        process.up()
    yield pair
    for process in pair.values():
        process.kill()


@pytest.fixture
async def front(replicas: dict[str, StandInProcess], tmp_path: Path) -> AsyncIterator[Front]:
    """A gateway (auth on, api mode) routing one model to both replicas."""
    backends = [
        {"name": name, "kind": "openai", "url": p.url, "location": "cloud"}
        for name, p in replicas.items()
    ]
    settings = Settings(
        storage=StorageSettings(database_url=f"sqlite:///{tmp_path / 'front.db'}"),
        routing=RoutingSettings.model_validate(
            {"mode": "api", "models": {MODEL: {"backends": backends}}}
        ),
    )
    app = create_app(settings)
    async with served(app) as url:
        state = app.state.luodi
        key = make_key(state.gateway, "caller", ["developer"])
        router = state.engines[MODEL].router
        yield Front(url, key, state.gateway, replicas, router)


QUESTION = "please repeat these seven words back"


async def _ask(client: openai.AsyncOpenAI, i: int) -> str:
    answer = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": f"{i} {QUESTION}"}], max_tokens=32
    )
    return answer.choices[0].message.content or ""


async def _stream(
    client: openai.AsyncOpenAI, i: int, started: list[int]
) -> tuple[list[Any], BaseException | None]:
    chunks: list[Any] = []
    try:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"{i} {QUESTION}"}],
            max_tokens=32,
            stream=True,
        )
        async for chunk in stream:
            chunks.append(chunk)
            if len(chunks) == 2:  # the role, then the first words
                started.append(i)
    except openai.APIError as exc:
        return chunks, exc
    return chunks, None


async def _records(front: Front, n: int) -> list[dict[str, Any]]:
    await wait_until(lambda: len(front.records()) >= n)  # streams write theirs as they close
    return front.records()


async def test_killing_a_replica_under_load_loses_no_buffered_request(front: Front) -> None:
    client = front.client()
    on_a, on_b = front.router.backends[MODEL]
    started: list[int] = []
    # 16 concurrent clients, half of them streaming, spread evenly over both replicas;
    # a is killed once every stream has its first words.
    buffered = [asyncio.create_task(_ask(client, i)) for i in range(8)]
    await wait_until(lambda: on_a.outstanding == on_b.outstanding == 4, limit_s=30)
    streamed = [asyncio.create_task(_stream(client, 100 + i, started)) for i in range(8)]
    await wait_until(lambda: len(started) == 8, limit_s=30)
    assert on_a.outstanding == on_b.outstanding == 8
    front.replicas["a"].kill()
    answers = await asyncio.gather(*buffered)
    streams = await asyncio.gather(*streamed)

    # Non-streaming: every client gets a whole answer, from b (a's replays included).
    assert all(answer.startswith("[b]") and QUESTION in answer for answer in answers)

    cut = [(chunks, exc) for chunks, exc in streams if exc is not None]
    whole = [chunks for chunks, exc in streams if exc is None]
    assert cut and whole  # both replicas were streaming when a died
    for chunks, exc in cut:
        # The SDK raises a clear error instead of returning a truncated answer, and the
        # last chunk before it says the stream was cut.
        assert "mid-stream" in str(exc)
        assert chunks[-1].choices[0].finish_reason == "error"
        assert "".join(c.choices[0].delta.content or "" for c in chunks).startswith("[a]")
    for chunks in whole:
        assert chunks[-1].choices[0].finish_reason == "stop"

    records = await _records(front, 16)
    assert len(records) == 16  # one per request, whatever its end
    assert all(r["decision"] == "allowed" for r in records)
    replayed = [r for r in records if r["reason"] and r["reason"].startswith("failover from a")]
    assert replayed and all(r["backend"] == "b" for r in replayed)
    assert sum(1 for r in records if r["reason"] and "mid-stream" in r["reason"]) >= len(cut)


@pytest.mark.parametrize("stream", [False, True], ids=["buffered", "streamed"])
async def test_every_replica_down_is_the_same_quick_503(front: Front, stream: bool) -> None:
    async with httpx.AsyncClient(
        base_url=front.url, headers={"Authorization": f"Bearer {front.key}"}, timeout=30
    ) as http:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
        assert (await http.post("/v1/chat/completions", json=body)).status_code == 200
        for replica in front.replicas.values():
            replica.kill()
        began = time.monotonic()
        answer = await http.post("/v1/chat/completions", json=body)
        took = time.monotonic() - began
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["retry-after"] == "1"
    assert json.loads(answer.text)["error"]["type"] == "service_unavailable"
    assert took < 0.5, took
