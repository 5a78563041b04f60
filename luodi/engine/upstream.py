"""An Engine over any OpenAI-compatible server: vLLM, SGLang or a cloud API.

The upstream renders and tokenizes itself, so requests go out as OpenAI wire
bodies (``messages`` + ``chat_options`` for chat, ``prompt`` for completions) with
``stream: true`` and ``stream_options.include_usage``; the SSE reply comes back as
``UpstreamEvent``s, carrying the upstream's ``reasoning_content`` and
``tool_calls`` deltas next to the text.

Failure rules (the router relies on them):

* A connection that cannot be made raises ``UpstreamUnavailableError`` (kind
  ``connect``) at once: the router takes the backend out and tries another.
* Before the first token, a connection that drops (a stale kept-alive one included)
  and a 5xx are retried on the same upstream, ``max_retries`` times with exponential
  backoff; 4xx never. When retries run out, ``generate`` raises
  ``UpstreamUnavailableError`` (retryable on another replica); a 4xx raises
  ``UpstreamRejectedError`` with the upstream's message and status.
* After the first token, any failure ends the stream with one error event
  (``finish_reason=ERROR``); nothing is retried, since text was already sent.
* Leaving the iterator early (or ``abort``) closes the upstream HTTP stream, which
  makes vLLM abort the sequence.

The wire format (request bodies, stream-chunk parsing) lives in ``upstream_wire.py``
and the two errors in ``upstream_errors.py``; both are re-exported here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from luodi.config.routing import BackendSettings
from luodi.engine.metrics import EngineMetrics
from luodi.engine.planning import pass_through
from luodi.engine.types import FinishReason, GenerationRequest, ModelInfo, PromptRequest, Usage
from luodi.engine.upstream_errors import (
    UpstreamRejectedError,
    UpstreamUnavailableError,
    describe,
    is_retryable,
)
from luodi.engine.upstream_wire import (
    FINISH_REASONS,
    UpstreamEvent,
    choice_event,
    error_message,
    parse_usage,
    reported_context_length,
    request_body,
    stream_error,
)
from luodi.errors import UpstreamError

__all__ = [
    "ProbeResult",
    "UpstreamEngine",
    "UpstreamEvent",
    "UpstreamRejectedError",
    "UpstreamUnavailableError",
    "is_retryable",
]

log = logging.getLogger(__name__)


@dataclass(slots=True, frozen=True)
class ProbeResult:
    """One health probe: whether the upstream answered, and how fast."""

    ok: bool
    rtt_s: float
    error: str | None = None


class _Dropped(Exception):
    """The upstream closed the stream before it finished."""


class UpstreamEngine:
    """The Engine contract over an OpenAI-compatible HTTP server.

    Args:
        settings: The backend's settings (URL, key, timeouts, retries).
        model: The model name clients use; sent upstream unless
            ``settings.upstream_model`` names another.
        metrics: Where to record TTFT, inter-token latency, tokens and errors.
        context_length: Reported in ``info``.
        transport: An httpx transport to use instead of the network (tests).
    """

    def __init__(
        self,
        settings: BackendSettings,
        *,
        model: str,
        metrics: EngineMetrics | None = None,
        context_length: int = 32768,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if settings.url is None:
            raise ValueError(f"backend '{settings.name}' has no url")
        self.settings = settings
        self.name = settings.name
        self.model = model
        self.metrics = metrics
        self._base = settings.url.rstrip("/")
        self._info = ModelInfo(
            name=model,
            context_length=context_length,
            quantization=settings.format.value if settings.format else None,
            backend=settings.name,
            owned_by=settings.kind.value,
        )
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._responses: dict[str, httpx.Response] = {}
        self._aborted: set[str] = set()
        self._close_tasks: set[asyncio.Task[None]] = set()
        self.outstanding = 0
        """Requests in flight to this upstream (the router balances on it)."""
        self.last_probe: ProbeResult | None = None
        self.max_model_len: int | None = None
        """The context length the upstream reports in /models (vLLM's max_model_len)."""

    @property
    def info(self) -> ModelInfo:
        return self._info

    async def start(self) -> None:
        """Open the connection pool; does not contact the upstream."""
        if self._client is not None:
            return
        headers = {"Accept": "text/event-stream"}
        key = self.settings.resolved_api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        timeout = httpx.Timeout(
            self.settings.read_timeout_s,
            connect=self.settings.connect_timeout_s,
            pool=self.settings.connect_timeout_s,
        )
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=timeout,
            transport=self._transport,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )

    async def stop(self) -> None:
        """Close every open stream and the connection pool."""
        client, self._client = self._client, None
        for response in list(self._responses.values()):
            await response.aclose()
        if client is not None:
            await client.aclose()

    def prepare(self, request: PromptRequest) -> list[GenerationRequest]:
        """Messages or text as they are: the upstream renders and tokenizes them."""
        return pass_through(request)

    def health(self) -> dict[str, object]:
        """The last probe's outcome, for /health."""
        probe = self.last_probe
        return {
            "status": "unknown" if probe is None else ("ok" if probe.ok else "down"),
            "backend": self.name,
            "kind": self.settings.kind.value,
            "location": self.settings.location.value,
            "url": self._base,
            "rtt_ms": None if probe is None else round(probe.rtt_s * 1000, 2),
            "outstanding": self.outstanding,
            "error": None if probe is None else probe.error,
        }

    async def probe(self, timeout_s: float = 2.0) -> ProbeResult:
        """GET ``/models`` and time the round trip; never raises."""
        client = self._require_client()
        started = time.monotonic()
        try:
            response = await client.get(f"{self._base}/models", timeout=timeout_s)
            rtt = time.monotonic() - started
            if response.status_code >= 400:
                result = ProbeResult(False, rtt, f"HTTP {response.status_code}")
            else:
                result = ProbeResult(True, rtt)
                self.max_model_len = reported_context_length(response, self._upstream_model())
        except httpx.HTTPError as exc:
            result = ProbeResult(False, time.monotonic() - started, describe(exc))
        self.last_probe = result
        return result

    def abort(self, request_id: str) -> None:
        """Close the upstream stream of ``request_id``; its iterator ends CANCELLED."""
        response = self._responses.get(request_id)
        if response is None:
            return
        self._aborted.add(request_id)
        task = asyncio.get_running_loop().create_task(response.aclose())
        self._close_tasks.add(task)
        task.add_done_callback(self._close_tasks.discard)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[UpstreamEvent]:
        """Stream one generation from the upstream (see the module docstring for failures)."""
        client = self._require_client()
        chat = request.messages is not None
        path = "/chat/completions" if chat else "/completions"
        body = request_body(
            request,
            chat=chat,
            model=self._upstream_model(request),
            kind=self.settings.kind,
            context_length=self.max_model_len or self._info.context_length,
        )
        rid = request.request_id
        self.outstanding += 1
        state = _StreamState(request.arrival_time)
        try:
            response = await self._open(client, f"{self._base}{path}", body)
            self._responses[rid] = response
            if self.metrics is not None:
                self.metrics.observe_queue_wait(
                    self.name, self.model, time.monotonic() - request.arrival_time
                )
            try:
                async for event in self._events(response, rid, chat, state):
                    yield event
                    if event.finished:
                        return
            except Exception as exc:
                if rid in self._aborted:  # abort() closed the stream under the reader
                    yield self._finish(rid, state, FinishReason.CANCELLED)
                    return
                if not isinstance(exc, (httpx.HTTPError, httpx.StreamError, _Dropped)):
                    raise
                if not state.emitted:
                    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "stream"
                    self._count_error(kind)
                    raise UpstreamUnavailableError(
                        f"upstream {self.name} failed before the first token: {describe(exc)}",
                        backend=self.name,
                        kind=kind,
                    ) from exc
                self._count_error("stream")
                yield self._finish(
                    rid,
                    state,
                    FinishReason.ERROR,
                    f"upstream {self.name} failed mid-stream: {describe(exc)}",
                )
        finally:
            self.outstanding -= 1
            self._aborted.discard(rid)
            response_open = self._responses.pop(rid, None)
            if response_open is not None:
                await response_open.aclose()

    # -- request ----------------------------------------------------------------

    async def _open(
        self, client: httpx.AsyncClient, url: str, body: dict[str, Any]
    ) -> httpx.Response:
        """POST and return a 2xx streaming response (see the module docstring for failures).

        A connection that cannot be made fails at once: nothing listens there, and the
        router has another backend, or a quick 503 with Retry-After, to give instead. A
        connection that drops before the response begins (a kept-alive connection to a
        backend that died or restarted while idle) is retried at once on another
        connection, then with backoff like a 5xx, up to ``max_retries`` times.
        """
        delay = self.settings.retry_backoff_s
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = await client.send(
                    client.build_request("POST", url, json=body), stream=True
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                self._count_error("connect")
                raise UpstreamUnavailableError(
                    f"upstream {self.name} unreachable: {describe(exc)}",
                    backend=self.name,
                    kind="connect",
                ) from exc
            except httpx.TimeoutException as exc:
                self._count_error("timeout")
                raise UpstreamUnavailableError(
                    f"upstream {self.name} timed out: {describe(exc)}",
                    backend=self.name,
                    kind="timeout",
                ) from exc
            except httpx.TransportError as exc:
                # Read, write and protocol errors before the status line: the request
                # never started on the upstream as far as the client can tell.
                self._count_error("dropped")
                if last:
                    raise UpstreamUnavailableError(
                        f"upstream {self.name} dropped the connection: {describe(exc)}",
                        backend=self.name,
                        kind="dropped",
                    ) from exc
                if attempt == 0:
                    log.info("upstream %s dropped a kept-alive connection; retrying", self.name)
                    continue
            else:
                if response.status_code < 400:
                    return response
                await response.aread()
                await response.aclose()
                message = error_message(response)
                if response.status_code < 500:
                    self._count_error("http_4xx")
                    raise UpstreamRejectedError(
                        f"upstream {self.name} refused the request"
                        f" (HTTP {response.status_code}): {message}",
                        backend=self.name,
                        status=response.status_code,
                    )
                self._count_error("http_5xx")
                if last:
                    raise UpstreamUnavailableError(
                        f"upstream {self.name} failed (HTTP {response.status_code}): {message}",
                        backend=self.name,
                        kind="http_5xx",
                    )
            log.info("retrying upstream %s in %.2fs", self.name, delay)
            await asyncio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    # -- response ---------------------------------------------------------------

    async def _events(
        self, response: httpx.Response, rid: str, chat: bool, state: _StreamState
    ) -> AsyncIterator[UpstreamEvent]:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, ": keep-alive" comments, "event:" lines
            data = line[5:].strip()
            if data == "[DONE]":
                state.done = True
                break
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError:
                log.warning("upstream %s sent a line that is not JSON: %.200s", self.name, data)
                continue
            error = stream_error(chunk)
            if error is not None:
                state.error = error
                continue
            if isinstance(chunk.get("usage"), dict):
                state.usage = parse_usage(chunk["usage"])
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) != 0:
                    continue
                event = choice_event(rid, self.name, choice, chat)
                reason = choice.get("finish_reason")
                if reason:
                    state.finish = FINISH_REASONS.get(reason, FinishReason.STOP)
                    state.pending = event
                elif event.has_output:
                    self._observe_token(state)
                    yield event
        if state.error is not None:
            if not state.emitted:
                self._count_error("stream")
                raise UpstreamUnavailableError(
                    f"upstream {self.name} failed: {state.error}",
                    backend=self.name,
                    kind="stream",
                )
            self._count_error("stream")
            yield self._finish(rid, state, FinishReason.ERROR, state.error)
            return
        if rid in self._aborted:
            yield self._finish(rid, state, FinishReason.CANCELLED)
            return
        if state.finish is None and not state.done:
            raise _Dropped("the connection closed before the stream finished")
        yield self._finish(rid, state, state.finish or FinishReason.STOP)

    def _observe_token(self, state: _StreamState) -> None:
        now = time.monotonic()
        if not state.emitted:
            state.emitted = True
            state.first_at = now
        elif self.metrics is not None and state.last_at is not None:
            self.metrics.observe_inter_token(self.name, self.model, now - state.last_at)
        state.last_at = now
        state.chunks += 1

    def _finish(
        self,
        rid: str,
        state: _StreamState,
        reason: FinishReason,
        error: str | None = None,
    ) -> UpstreamEvent:
        event = state.pending or UpstreamEvent(rid, backend=self.name)
        if event.has_output:
            self._observe_token(state)
        event.finish_reason = reason
        event.error = error
        event.usage = state.usage or Usage(completion_tokens=state.chunks)
        if self.metrics is not None:
            if state.first_at is not None:
                self.metrics.observe_ttft(self.name, self.model, state.first_at - state.arrival)
            self.metrics.observe_finished(
                self.name,
                self.model,
                reason=reason.value,
                prompt_tokens=event.usage.prompt_tokens,
                completion_tokens=event.usage.completion_tokens,
                e2e_s=time.monotonic() - state.arrival,
            )
        return event

    def _count_error(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.count_error(self.name, self.model, kind)

    def _upstream_model(self, request: GenerationRequest | None = None) -> str:
        requested = request.model if request is not None else None
        return self.settings.upstream_model or requested or self.model

    def _require_client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise UpstreamError(f"upstream engine {self.name} has not been started")
        return self._client


@dataclass(slots=True)
class _StreamState:
    arrival: float
    emitted: bool = False
    first_at: float | None = None
    last_at: float | None = None
    chunks: int = 0
    finish: FinishReason | None = None
    pending: UpstreamEvent | None = None
    usage: Usage | None = None
    error: str | None = None
    done: bool = False
