"""The OpenAI wire format as ``UpstreamEngine`` speaks it: request bodies out, chunks in.

Pure functions over plain dicts, so they are testable without a server: a
``GenerationRequest`` becomes a ``/chat/completions`` or ``/completions`` body, and
each decoded stream chunk (or error body) becomes events, usage, logprobs or an
error message. HTTP, retries and metrics stay in ``upstream.py``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import httpx

from luodi.config.routing import BackendKind
from luodi.engine.types import (
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    TokenLogprob,
    Usage,
)

__all__ = [
    "FINISH_REASONS",
    "UpstreamEvent",
    "chat_logprobs",
    "choice_event",
    "completion_logprobs",
    "error_message",
    "parse_usage",
    "reported_context_length",
    "request_body",
    "stream_error",
]

FINISH_REASONS = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "abort": FinishReason.CANCELLED,
}
"""OpenAI (and vLLM) ``finish_reason`` values; an unknown one is read as STOP."""


@dataclass(slots=True)
class UpstreamEvent(GenerationEvent):
    """A ``GenerationEvent`` from an upstream stream.

    ``reasoning``, ``tool_calls`` and ``backend`` live on ``GenerationEvent`` itself;
    this class only adds ``has_output``.
    """

    @property
    def has_output(self) -> bool:
        """True when the event carries anything the client sees."""
        return bool(self.text or self.reasoning or self.tool_calls or self.token_ids)


def request_body(
    request: GenerationRequest,
    *,
    chat: bool,
    model: str,
    kind: BackendKind,
    context_length: int | None = None,
) -> dict[str, Any]:
    """The streaming request body for ``request``, sent as ``model`` to a ``kind`` server.

    No ``max_tokens`` (None: the client named none and no default is configured, see
    ``luodi.engine.planning``), or one at or above the upstream's ``context_length``
    (an absurd 10**12), is left out: "as much as fits" is then the upstream's own
    default, where vLLM would refuse prompt + max_tokens above its max_model_len with
    a 400.
    """
    p = request.params
    body: dict[str, Any] = {
        "model": model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": p.temperature,
        "top_p": p.top_p,
    }
    if p.max_tokens is not None and (context_length is None or p.max_tokens < context_length):
        body["max_tokens"] = p.max_tokens
    if chat:
        body["messages"] = request.messages
    elif request.prompt is not None:
        body["prompt"] = request.prompt
    else:
        body["prompt"] = request.prompt_tokens  # the completions API takes token ids too
    if p.seed is not None:
        body["seed"] = p.seed
    if p.stop:
        body["stop"] = p.stop
    if p.presence_penalty:
        body["presence_penalty"] = p.presence_penalty
    if p.frequency_penalty:
        body["frequency_penalty"] = p.frequency_penalty
    if p.logprobs is not None:
        if chat:
            body["logprobs"] = True
            body["top_logprobs"] = p.logprobs
        else:
            body["logprobs"] = p.logprobs
    options = dict(request.chat_options) if chat else {}
    if kind in (BackendKind.VLLM, BackendKind.SGLANG):
        # Sampling extensions both servers accept; a cloud API would reject them.
        extras: dict[str, Any] = {
            "top_k": p.top_k or None,
            "min_p": p.min_p or None,
            "repetition_penalty": p.repetition_penalty if p.repetition_penalty != 1 else None,
            "ignore_eos": p.ignore_eos or None,
            "stop_token_ids": p.stop_token_ids or None,
            "logit_bias": {str(k): v for k, v in p.logit_bias.items()} or None,
        }
        body.update({k: v for k, v in extras.items() if v is not None})
    else:
        kwargs = options.pop("chat_template_kwargs", None) or {}
        if "enable_thinking" in kwargs:  # DashScope's compatible mode takes it top-level
            body["enable_thinking"] = kwargs["enable_thinking"]
    body.update(options)
    return body


def choice_event(rid: str, backend: str, choice: dict[str, Any], chat: bool) -> UpstreamEvent:
    """The event of one streamed choice (its delta, or its text for completions)."""
    event = UpstreamEvent(rid, backend=backend)
    if chat:
        delta = choice.get("delta") or {}
        event.text = delta.get("content") or ""
        # vLLM calls it reasoning_content (newer releases: reasoning).
        event.reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
        event.tool_calls = list(delta.get("tool_calls") or [])
        event.logprobs = chat_logprobs(choice.get("logprobs"))
    else:
        event.text = choice.get("text") or ""
        event.logprobs = completion_logprobs(choice.get("logprobs"))
    return event


def error_message(response: httpx.Response) -> str:
    """The message of an OpenAI-shaped (or vLLM ``object: error``) error body."""
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict):
            found = stream_error(body)
            if found is not None:
                return found
    return response.text[:500] or response.reason_phrase


def stream_error(chunk: dict[str, Any]) -> str | None:
    """The message of an error chunk: ``{"error": {...}}`` or vLLM's ``{"object": "error"}``."""
    error = chunk.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)
    if isinstance(error, str):
        return error
    if chunk.get("object") == "error":
        return str(chunk.get("message") or chunk)
    return None


def parse_usage(raw: dict[str, Any]) -> Usage:
    """A chunk's ``usage`` object, with cached prompt tokens when the server reports them."""
    details = raw.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0),
    )


def chat_logprobs(raw: Any) -> list[TokenLogprob]:
    """Logprobs of a chat choice: ``{"content": [{token, logprob, top_logprobs}]}``."""
    if not isinstance(raw, dict):
        return []
    out: list[TokenLogprob] = []
    for item in raw.get("content") or []:
        top = [
            (t.get("token", ""), float(t.get("logprob", 0.0)))
            for t in item.get("top_logprobs") or []
        ]
        out.append(TokenLogprob(item.get("token", ""), float(item.get("logprob", 0.0)), top))
    return out


def completion_logprobs(raw: Any) -> list[TokenLogprob]:
    """Logprobs of a completion choice: parallel token lists, alternatives best first."""
    if not isinstance(raw, dict):
        return []
    tokens = raw.get("tokens") or []
    values = raw.get("token_logprobs") or []
    tops = raw.get("top_logprobs") or [None] * len(tokens)
    out: list[TokenLogprob] = []
    for token, value, top in zip(tokens, values, tops, strict=False):
        ranked = sorted((top or {}).items(), key=lambda kv: -kv[1])
        out.append(TokenLogprob(token, float(value or 0.0), ranked))
    return out


def reported_context_length(response: httpx.Response, model: str) -> int | None:
    """``max_model_len`` of ``model`` in a ``GET /models`` answer (vLLM, SGLang), if given."""
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        for entry in response.json().get("data") or []:
            if entry.get("id") == model and isinstance(entry.get("max_model_len"), int):
                return int(entry["max_model_len"])
    return None
