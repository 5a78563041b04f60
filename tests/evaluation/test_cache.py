"""Identical requests in flight are sent once, and the cache keeps that one answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI

from luodi.evaluation.cache import ResponseCache
from luodi.evaluation.endpoint import Endpoint
from tests.conftest import served


def _counting_app(seen: list[dict[str, object]]) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/completions")
    async def completions(body: dict[str, object]) -> dict[str, object]:
        seen.append(body)
        await asyncio.sleep(0.05)  # long enough for the duplicates to arrive meanwhile
        return {"choices": [{"text": str(len(seen))}]}

    return app


async def test_identical_requests_in_flight_are_sent_once(tmp_path: Path) -> None:
    seen: list[dict[str, object]] = []
    async with served(_counting_app(seen)) as url:
        cache = ResponseCache(tmp_path / "cache.sqlite")
        endpoint = Endpoint(url, "m", concurrency=8, cache=cache)
        try:
            same = {"prompt": [1, 2, 3], "max_tokens": 1}
            answers = await asyncio.gather(
                *(endpoint.post("/completions", same) for _ in range(5)),
                endpoint.post("/completions", {**same, "prompt": [1, 2, 4]}),
            )
        finally:
            await endpoint.aclose()
    assert len(seen) == 2 and endpoint.requests_sent == 2
    assert len({a["choices"][0]["text"] for a in answers[:5]}) == 1  # type: ignore[index]
