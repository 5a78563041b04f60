"""An OpenAI-compatible endpoint as the evaluator sees it: POST JSON, cached, bounded.

Every request goes through ``Endpoint.post``: the cache is asked first, then the
endpoint, at most ``concurrency`` requests at a time; 429 and 5xx answers are retried
with backoff, any other error stops the run with the endpoint's own message.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from luodi.errors import LuodiError
from luodi.evaluation.cache import ResponseCache, cache_key

__all__ = ["Endpoint", "EndpointError"]


class EndpointError(LuodiError):
    """The endpoint refused a request, or cannot do what the chosen mode needs."""


class Endpoint:
    """One base URL (``.../v1`` or the server root) and one model."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = 4,
        cache: ResponseCache | None = None,
        timeout_s: float = 300.0,
        retries: int = 4,
        identity: str | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        # What answers are cached under: the URL, or a stable name for a server whose
        # URL changes every run (an in-process engine on an ephemeral port).
        self.identity = identity or self.base_url
        self.model = model
        self.cache = cache
        self.retries = retries
        self.requests_sent = 0
        self._gate = asyncio.Semaphore(concurrency)
        self._in_flight: dict[str, asyncio.Future[dict[str, Any]]] = {}
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout_s)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` (the model added) to ``path``; the answer, from the cache if there."""
        body = {"model": self.model, **body}
        key = cache_key(self.identity, self.model, path, body)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return hit
        # One request for identical ones in flight (choices sharing their first tokens
        # ask the same thing): a run then agrees with the cache it leaves, whatever
        # the engine's last bits do when the same request is computed twice.
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            async with self._gate:
                answer = await self._send(path, body)
            if self.cache is not None:
                self.cache.put(key, answer)
            future.set_result(answer)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else need
            raise
        finally:
            del self._in_flight[key]
        return answer

    async def _send(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        delay = 0.5
        for attempt in range(self.retries + 1):
            self.requests_sent += 1
            try:
                response = await self._client.post(self.base_url + path, json=body)
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise EndpointError(f"{self.base_url}{path}: {exc!r}") from exc
            else:
                if response.status_code < 400:
                    answer: dict[str, Any] = response.json()
                    return answer
                if response.status_code != 429 and response.status_code < 500:
                    raise EndpointError(
                        f"{self.base_url}{path} answered {response.status_code}: "
                        f"{_message(response)}"
                    )
                if attempt == self.retries:
                    raise EndpointError(
                        f"{self.base_url}{path} answered {response.status_code} "
                        f"{self.retries + 1} times: {_message(response)}"
                    )
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self._client.aclose()


def _message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        return str(error.get("message") or response.text[:300])
    except (ValueError, AttributeError):
        return response.text[:300]
