"""POST /v1/chat/completions: parse, run the gateway pipeline, shape the answer.

Thinking comes back as ``reasoning_content``, tool calls as ``tool_calls``, and a
``response_format`` answer is checked against its schema (``schema_errors``). Where
the engine took a prompt luodi rendered (the embedded one), luodi parses its output
here; an upstream that rendered for itself hands back parsed deltas.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from luodi.api.deps import PipelineDep
from luodi.api.disconnect import cancel_on_disconnect
from luodi.api.gateway import PrincipalDep
from luodi.api.openai.generation import (
    Collected,
    add_usage,
    collect_all,
    merge_streams,
    sampling_params,
)
from luodi.api.openai.protocol import (
    ChatCompletionChoice,
    ChatCompletionResponse,
    ChatCompletionStreamChoice,
    ChatCompletionStreamResponse,
    ChatLogprobs,
    UsageInfo,
)
from luodi.api.openai.schemas import ChatCompletionRequest, make_id, now
from luodi.api.openai.streaming import sse_response
from luodi.api.pipeline import AnswerRestorer, ChatWork, Exchange, Pipeline
from luodi.chat import ChatOutputParser, response_format_schema, validate_json_output
from luodi.engine.types import GenerationEvent, Usage
from luodi.errors import EngineError

__all__ = ["router"]

router = APIRouter()


def _work(body: ChatCompletionRequest) -> ChatWork:
    """The wire request as the pipeline takes it."""
    options = {
        "tools": [t.model_dump(exclude_none=True) for t in body.tools] if body.tools else None,
        "tool_choice": body.tool_choice,
        "response_format": body.response_format.model_dump(exclude_none=True, by_alias=True)
        if body.response_format
        else None,
        "chat_template_kwargs": body.chat_template_kwargs,
    }
    top = (body.top_logprobs or 0) if body.logprobs else None
    return ChatWork(
        messages=[m.model_dump(exclude_none=True) for m in body.messages],
        options={k: v for k, v in options.items() if v is not None},
        params=sampling_params(body, max_tokens=body.completion_limit, logprobs=top),
        n=body.n,
        stream=body.stream,
        kb=list(body.kb or []),
        kb_top_k=body.kb_top_k,
    )


@router.post("/v1/chat/completions", response_model=None)
@cancel_on_disconnect
async def create_chat_completion(
    body: ChatCompletionRequest, pipeline: PipelineDep, principal: PrincipalDep, request: Request
) -> Response:
    """OpenAI chat completions: thinking as reasoning_content, tool calls, JSON output."""
    work = _work(body)
    work.conversation = request.headers.get("x-luodi-conversation") or body.user
    exchange = pipeline.open(principal, request, body.model, work)
    async with pipeline.guarding(exchange):
        await pipeline.run(exchange)
    answer = _Answer(body, exchange, pipeline)
    if body.stream:
        return sse_response(answer.stream(), on_close=lambda: pipeline.finish(exchange))
    async with pipeline.guarding(exchange):
        results = await collect_all(exchange.primed)
        exchange.raise_if_aborted()
    response = answer.whole(results)
    await pipeline.finish(exchange)
    return JSONResponse(response.wire())


class _Answer:
    """Shapes one chat request's answer, whole or streamed, from its engine events."""

    def __init__(self, body: ChatCompletionRequest, exchange: Exchange, pipeline: Pipeline):
        self.body = body
        self.exchange = exchange
        self.id, self.created = make_id("chatcmpl"), now()
        prepared = exchange.chat
        self.parsers: list[ChatOutputParser | None] = [
            prepared.output_parser() if prepared else None for _ in exchange.primed
        ]
        # The JSON the answer must be: checked once it is complete (docs/structured-output.md).
        work = exchange.work
        assert isinstance(work, ChatWork)
        self.schema = (
            prepared.schema
            if prepared
            else response_format_schema(work.options.get("response_format"))
        )
        self.restorer: AnswerRestorer = pipeline.answer(exchange)
        # An assistant (support/<name>) grounds without the client naming a kb.
        self.citations = exchange.citations if body.kb or exchange.citations else None

    def whole(self, results: list[Collected]) -> ChatCompletionResponse:
        choices, usage = [], Usage()
        for index, result in enumerate(results):
            self.exchange.response.append(result.text)
            message, reason = _message_from(result, self.parsers[index])
            message = self.restorer.message(message)
            choices.append(
                ChatCompletionChoice(
                    index=index,
                    message=message,
                    logprobs=ChatLogprobs.of(result.logprobs) if self.body.logprobs else None,
                    finish_reason=reason,
                    schema_errors=validate_json_output(message.get("content") or "", self.schema)
                    if self.schema is not None and not message.get("tool_calls")
                    else None,
                )
            )
            add_usage(usage, result.usage, new_prompt=index == 0)
        self.exchange.usage = usage
        return ChatCompletionResponse(
            id=self.id,
            created=self.created,
            model=self.body.model,
            choices=choices,
            usage=UsageInfo.of(usage),
            citations=self.citations,
        )

    def _chunk(
        self, choices: list[ChatCompletionStreamChoice], usage: UsageInfo | None = None
    ) -> ChatCompletionStreamResponse:
        return ChatCompletionStreamResponse(
            id=self.id, created=self.created, model=self.body.model, choices=choices, usage=usage
        )

    async def stream(self) -> AsyncIterator[dict[str, Any]]:
        body, exchange, primed = self.body, self.exchange, self.exchange.primed
        usage = exchange.usage
        saw_tool_calls = [False] * len(primed)
        contents = [""] * len(primed)
        for index in range(len(primed)):
            role = {"role": "assistant", "content": ""}
            yield self._chunk([ChatCompletionStreamChoice(index=index, delta=role)]).wire()
        async for index, raw in merge_streams(primed):
            event = exchange.checked(raw)
            exchange.response.append(event.text)
            exchange.backend = event.backend or exchange.backend
            logprobs = ChatLogprobs.of(event.logprobs) if body.logprobs and event.logprobs else None
            deltas = [
                d
                for d in (
                    self.restorer.delta(index, x) for x in _event_deltas(event, self.parsers[index])
                )
                if d
            ]
            if event.finished:
                deltas.extend(self.restorer.flush(index))
            for delta in deltas:
                saw_tool_calls[index] |= "tool_calls" in delta
                contents[index] += delta.get("content") or ""
                choice = ChatCompletionStreamChoice(index=index, delta=delta, logprobs=logprobs)
                yield self._chunk([choice]).wire()
                logprobs = None
            if event.finished:
                reason = event.finish_reason.value if event.finish_reason else "stop"
                parser = self.parsers[index]
                if parser is not None and not event.error:  # a cut stream stays "error"
                    reason = parser.finish_reason(reason)
                elif saw_tool_calls[index] and reason == "stop":
                    reason = "tool_calls"
                last = ChatCompletionStreamChoice(index=index, delta={}, finish_reason=reason)
                if self.schema is not None and not saw_tool_calls[index]:
                    last.schema_errors = validate_json_output(contents[index], self.schema)
                final = self._chunk([last])
                if self.citations is not None and index == 0:
                    final.citations = self.citations
                yield final.wire()
                if event.usage is not None:
                    add_usage(usage, event.usage, new_prompt=index == 0)
                if event.error:
                    # The choice's last chunk said finish_reason "error"; now say why.
                    exchange.notes.append(event.error)
                    raise EngineError(event.error)
        if body.stream_options and body.stream_options.include_usage:
            yield self._chunk([], UsageInfo.of(usage)).wire()


def _message_from(result: Collected, parser: ChatOutputParser | None) -> tuple[dict[str, Any], str]:
    reason = result.finish_reason.value if result.finish_reason else "stop"
    if parser is None:
        return {"role": "assistant", "content": result.text}, reason
    parsed = parser.parse(result.text)
    return parsed.to_openai(), parser.finish_reason(reason)


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
