"""POST /v1/chat/completions: templates, thinking, tools and JSON output over any engine."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from luodi.api.deps import StateDep
from luodi.api.disconnect import cancel_on_disconnect
from luodi.api.gateway import PrincipalDep, TextRestorer, Trail
from luodi.api.openai.generation import (
    Collected,
    add_usage,
    collect_all,
    merge_streams,
    refuse_overlong,
    sampling_params,
    usage_body,
)
from luodi.api.openai.schemas import ChatCompletionRequest, make_id, now
from luodi.api.openai.streaming import sse_response
from luodi.api.state import AppState
from luodi.chat import (
    ChatOutputParser,
    ChatTemplate,
    PreparedChat,
    prepare_chat,
    response_format_schema,
    validate_json_output,
)
from luodi.engine.base import Engine
from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.engine.types import (
    GenerationEvent,
    GenerationRequest,
    Priority,
    TokenLogprob,
    Usage,
)
from luodi.errors import ContextLengthError, EngineError, ServiceUnavailableError

__all__ = ["router"]

router = APIRouter()


@dataclass
class _Plan:
    """One chat request turned into engine requests, plus how to read their output."""

    requests: list[GenerationRequest]
    prepared: PreparedChat | None


def _chat_options(body: ChatCompletionRequest) -> dict[str, Any]:
    return {
        "tools": [t.model_dump(exclude_none=True) for t in body.tools] if body.tools else None,
        "tool_choice": body.tool_choice,
        "response_format": body.response_format.model_dump(exclude_none=True, by_alias=True)
        if body.response_format
        else None,
        "chat_template_kwargs": body.chat_template_kwargs,
    }


def plan_chat(
    engine: Engine,
    body: ChatCompletionRequest,
    messages: list[dict[str, Any]],
    priority: Priority = Priority.NORMAL,
) -> _Plan:
    """Render (embedded engine) or pass through (upstream engines) one chat request."""
    options = _chat_options(body)
    top = (body.top_logprobs or 0) if body.logprobs else None
    if isinstance(engine, LlamaCppEngine):
        template = ChatTemplate.for_model(engine.template_metadata)
        prepared = prepare_chat(template, messages, **options)
        tokens = engine.tokenize_chat(prepared.prompt)
        room = engine.max_model_len - len(tokens)
        max_tokens = body.completion_limit or engine.default_max_tokens(len(tokens))
        if room < 1:
            raise ContextLengthError(
                f"this model's maximum context length is {engine.max_model_len} tokens, but the"
                f" messages take {len(tokens)} tokens; shorten them",
                param="messages",
            )
        reqs = [
            GenerationRequest(
                tokens,
                sampling_params(
                    body, max_tokens=max_tokens, logprobs=top, grammar=prepared.grammar, index=i
                ),
                model=body.model,
                priority=priority,
            )
            for i in range(body.n)
        ]
        return _Plan(reqs, prepared)
    max_tokens = body.completion_limit or engine.info.context_length
    reqs = [
        GenerationRequest(
            params=sampling_params(body, max_tokens=max_tokens, logprobs=top, index=i),
            messages=messages,
            chat_options={k: v for k, v in options.items() if v is not None},
            model=body.model,
            priority=priority,
            replayable=not body.stream,
        )
        for i in range(body.n)
    ]
    return _Plan(reqs, None)


def _texts(messages: list[dict[str, Any]]) -> list[str]:
    """Every text of the messages: contents, text parts, tool-call arguments."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            out.append(content)
        else:
            out.extend(p["text"] for p in content or [] if isinstance(p.get("text"), str))
        calls = m.get("tool_calls") or []
        out.extend(str(c.get("function", {}).get("arguments", "")) for c in calls)
    return out


def _flatten(messages: list[dict[str, Any]]) -> str:
    """The messages' text, for the audit digest when an upstream engine renders them."""
    parts = []
    for m in messages:
        content = m.get("content")
        text = (
            content
            if isinstance(content, str)
            else " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
        )
        parts.append(f"{m.get('role')}: {text}")
    return "\n".join(parts)


def _logprobs_body(entries: list[TokenLogprob]) -> dict[str, Any]:
    def item(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    return {
        "content": [
            {**item(e.token, e.logprob), "top_logprobs": [item(t, lp) for t, lp in e.top]}
            for e in entries
        ]
    }


def _message_from(result: Collected, parser: ChatOutputParser | None) -> tuple[dict[str, Any], str]:
    reason = result.finish_reason.value if result.finish_reason else "stop"
    if parser is None:
        return {"role": "assistant", "content": result.text}, reason
    parsed = parser.parse(result.text)
    return parsed.to_openai(), parser.finish_reason(reason)


@router.post("/v1/chat/completions", response_model=None)
@cancel_on_disconnect
async def create_chat_completion(
    body: ChatCompletionRequest, state: StateDep, principal: PrincipalDep, request: Request
) -> Response:
    """OpenAI chat completions: thinking as reasoning_content, tool calls, JSON output."""
    trail = Trail.open(state, principal, request, body.model)
    async with trail.guarding():
        engine = state.engine_for(body.model)
        trail.authorize()
        messages = [m.model_dump(exclude_none=True) for m in body.messages]
        citations: list[dict[str, Any]] = []
        if body.kb:
            messages, citations = await _ground(state, trail, messages, body.kb, body.kb_top_k)
        refuse_overlong(engine, _texts(messages), param="messages")
        # After grounding, so retrieved passages are masked too before anything leaves.
        messages = await trail.protect_messages(messages)
        plan = plan_chat(engine, body, messages, trail.priority)
        trail.prompt = plan.prepared.prompt if plan.prepared else _flatten(messages)
        estimate = len(plan.requests[0].prompt_tokens) or len(trail.prompt) // 3
        primed = await trail.launch(engine, plan.requests, prompt_tokens=estimate)
    chat_id, created = make_id("chatcmpl"), now()
    parsers = [plan.prepared.output_parser() if plan.prepared else None for _ in primed]
    # The JSON the answer must be: checked once it is complete (docs/structured-output.md).
    schema = (
        plan.prepared.schema
        if plan.prepared
        else response_format_schema(_chat_options(body)["response_format"])
    )
    if body.stream:
        return sse_response(
            _stream(body, primed, parsers, chat_id, created, trail, citations, schema),
            on_close=trail.finish,
        )
    choices, usage = [], Usage()
    async with trail.guarding():
        results = await collect_all(primed)
        trail.raise_if_aborted()
    for index, result in enumerate(results):
        trail.response.append(result.text)
        message, reason = _message_from(result, parsers[index])
        message = _Restorers(trail).restore_message(message)
        choice = {
            "index": index,
            "message": message,
            "logprobs": _logprobs_body(result.logprobs) if body.logprobs else None,
            "finish_reason": reason,
        }
        if schema is not None and not message.get("tool_calls"):
            choice["schema_errors"] = validate_json_output(message.get("content") or "", schema)
        choices.append(choice)
        add_usage(usage, result.usage, new_prompt=index == 0)
    trail.usage = usage
    await trail.finish()
    return JSONResponse(
        {
            "id": chat_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": choices,
            "usage": usage_body(usage),
            **({"citations": citations} if body.kb else {}),
        }
    )


async def _ground(
    state: AppState,
    trail: Trail,
    messages: list[dict[str, Any]],
    kb_names: list[str],
    top_k: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Retrieve from the named knowledge bases (each needs kb:<name>:read) into the prompt."""
    if state.knowledge is None:
        raise ServiceUnavailableError("knowledge bases are not available on this server")
    for name in kb_names:
        trail.gateway.authorize(trail.principal, f"kb:{name}:read")
    grounded, found = await state.knowledge.ground(messages, kb_names, top_k, trail.principal)
    return grounded, [dataclasses.asdict(c) for c in found]


class _Restorers:
    """Puts the caller's values back where the PII stage put pseudonyms, per channel."""

    _CHANNELS = ("content", "reasoning_content")

    def __init__(self, trail: Trail) -> None:
        self._trail = trail
        self._open: dict[tuple[int, str], TextRestorer] = {}

    def _get(self, index: int, channel: str) -> TextRestorer:
        key = (index, channel)
        if key not in self._open:
            self._open[key] = self._trail.restorer()
        return self._open[key]

    def delta(self, index: int, delta: dict[str, Any]) -> dict[str, Any] | None:
        """The delta with its text restored; None when everything is held back for now."""
        out = dict(delta)
        if "tool_calls" in out:
            out["tool_calls"] = self._trail.restore_tool_calls(out["tool_calls"])
            return out
        for channel in self._CHANNELS:
            if out.get(channel):
                out[channel] = self._get(index, channel).feed(out[channel])
                return out if out[channel] else None
        return out

    def flush(self, index: int) -> list[dict[str, Any]]:
        tails = []
        for channel in self._CHANNELS:
            if (index, channel) in self._open:
                tail = self._open.pop((index, channel)).flush()
                if tail:
                    tails.append({channel: tail})
        return tails

    def restore_message(self, message: dict[str, Any]) -> dict[str, Any]:
        out = dict(message)
        for channel in self._CHANNELS:
            if isinstance(out.get(channel), str):
                restorer = self._trail.restorer()
                out[channel] = restorer.feed(out[channel]) + restorer.flush()
        if out.get("tool_calls"):
            out["tool_calls"] = self._trail.restore_tool_calls(out["tool_calls"])
        return out


def _event_deltas(event: GenerationEvent, parser: ChatOutputParser | None) -> list[dict[str, Any]]:
    """The OpenAI ``delta`` objects one engine event yields."""
    deltas: list[dict[str, Any]] = []
    if parser is not None:
        deltas.extend(d.to_openai() for d in parser.feed(event.text))
        if event.finished:
            deltas.extend(d.to_openai() for d in parser.flush())
        return deltas
    if event.reasoning:
        deltas.append({"reasoning_content": event.reasoning})
    if event.text:
        deltas.append({"content": event.text})
    if event.tool_calls:
        deltas.append({"tool_calls": event.tool_calls})
    return deltas


async def _stream(
    body: ChatCompletionRequest,
    primed: list[Any],
    parsers: list[ChatOutputParser | None],
    chat_id: str,
    created: int,
    trail: Trail,
    citations: list[dict[str, Any]],
    schema: dict[str, Any] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    usage = trail.usage
    saw_tool_calls = [False] * len(primed)
    contents = [""] * len(primed)
    restorers = _Restorers(trail)

    def chunk(
        choices: list[dict[str, Any]], usage_obj: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": chat_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": choices,
        }
        if usage_obj is not None:
            out["usage"] = usage_obj
        return out

    for index in range(len(primed)):
        yield chunk(
            [
                {
                    "index": index,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ]
        )
    async for index, raw in merge_streams(primed):
        event = trail.checked(raw)
        trail.response.append(event.text)
        trail.backend = event.backend or trail.backend
        logprobs = _logprobs_body(event.logprobs) if body.logprobs and event.logprobs else None
        deltas = [
            d
            for d in (restorers.delta(index, x) for x in _event_deltas(event, parsers[index]))
            if d
        ]
        if event.finished:
            deltas.extend(restorers.flush(index))
        for delta in deltas:
            saw_tool_calls[index] |= "tool_calls" in delta
            contents[index] += delta.get("content") or ""
            yield chunk(
                [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": None}]
            )
            logprobs = None
        if event.finished:
            reason = event.finish_reason.value if event.finish_reason else "stop"
            parser = parsers[index]
            if parser is not None and not event.error:  # a cut stream stays "error"
                reason = parser.finish_reason(reason)
            elif saw_tool_calls[index] and reason == "stop":
                reason = "tool_calls"
            final = chunk(
                [{"index": index, "delta": {}, "logprobs": None, "finish_reason": reason}]
            )
            if body.kb and index == 0:
                final["citations"] = citations
            if schema is not None and not saw_tool_calls[index]:
                final["choices"][0]["schema_errors"] = validate_json_output(contents[index], schema)
            yield final
            if event.usage is not None:
                add_usage(usage, event.usage, new_prompt=index == 0)
            if event.error:
                # The choice's last chunk said finish_reason "error"; now say why.
                trail.notes.append(event.error)
                raise EngineError(event.error)
    if body.stream_options and body.stream_options.include_usage:
        yield chunk([], usage_body(usage))
