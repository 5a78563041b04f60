"""Route: the model's engine plans the request (``engine.prepare``); nothing is sent yet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from luodi.api.pipeline.exchange import (
    ChatWork,
    CompletionWork,
    EmbeddingWork,
    Exchange,
    TokenizeWork,
)
from luodi.chat import ChatTemplate, PreparedChat, prepare_chat
from luodi.engine.base import Engine, TextEngine
from luodi.engine.types import (
    ChatPrompt,
    PromptRequest,
    RenderedPrompt,
    SamplingParams,
    TemplateMetadata,
)
from luodi.errors import InvalidRequestError

__all__ = ["ChatRenderer", "Route"]


class ChatRenderer:
    """Renders a chat with ``luodi.chat`` for an engine that asks; remembers what it made.

    ``prepared`` stays None when the engine took the messages as they are (an
    upstream renders, and parses thinking and tool calls, itself).
    """

    def __init__(self, messages: list[dict[str, Any]], options: dict[str, Any]) -> None:
        self._messages = messages
        self._options = options
        self.prepared: PreparedChat | None = None

    def __call__(
        self, template: TemplateMetadata, isolate: Callable[[str], bool] | None = None
    ) -> RenderedPrompt:
        prepared = prepare_chat(
            ChatTemplate.for_model(template), self._messages, isolate=isolate, **self._options
        )
        self.prepared = prepared
        return RenderedPrompt(
            prepared.prompt, prepared.grammar, prepared.plain_spans, prepared.reference_prompt
        )


class Route:
    """Asks the model's engine to plan the request: one engine request per choice.

    The engine decides how (``Engine.prepare``): the embedded one renders, tokenizes
    and limits; an upstream or the router passes messages through. No route knows
    the engine's class. Route also counts what Limit admits: the planned prompt's
    tokens, or a third of its characters where an upstream counts them.
    """

    name = "route"

    def __init__(self, default_max_tokens: int | None) -> None:
        self._default_max_tokens = default_max_tokens
        """``engine.default_max_tokens``, for engines with no settings of their own."""

    async def run(self, exchange: Exchange) -> None:
        work = exchange.work
        if isinstance(work, EmbeddingWork):
            _embedding(exchange, work)
            return
        engine = exchange.engine
        assert engine is not None  # the pipeline resolved it
        if isinstance(work, TokenizeWork):
            _tokenize(exchange, engine, work)
            return
        if isinstance(work, ChatWork):
            self._chat(exchange, engine, work)
        else:
            self._completion(exchange, engine, work)

    def _request(
        self, exchange: Exchange, params: SamplingParams, n: int, stream: bool, **prompt: Any
    ) -> PromptRequest:
        return PromptRequest(
            params,
            n=n,
            model=exchange.model,
            priority=exchange.priority,
            replayable=not stream,
            default_max_tokens=self._default_max_tokens,
            **prompt,
        )

    def _chat(self, exchange: Exchange, engine: Engine, work: ChatWork) -> None:
        renderer = ChatRenderer(work.messages, work.options)
        chat = ChatPrompt(work.messages, work.options, renderer)
        exchange.requests = engine.prepare(
            self._request(exchange, work.params, work.n, work.stream, chat=chat)
        )
        exchange.chat = renderer.prepared
        exchange.prompt = renderer.prepared.prompt if renderer.prepared else _flatten(work.messages)
        tokens = len(exchange.requests[0].prompt_tokens)
        exchange.prompt_tokens = tokens or len(exchange.prompt) // 3

    def _completion(self, exchange: Exchange, engine: Engine, work: CompletionWork) -> None:
        exchange.requests = [
            planned
            for prompt in work.prompts  # each prompt is its own sequence, n choices each
            for planned in engine.prepare(
                self._request(exchange, work.params, work.n, work.stream, prompt=prompt)
            )
        ]
        exchange.prompt = "\n".join(
            p if isinstance(p, str) else detokenized(engine, p) for p in work.prompts
        )
        exchange.prompt_tokens = sum(len(r.prompt_tokens) for r in exchange.requests[:: work.n])


def _tokenize(exchange: Exchange, engine: Engine, work: TokenizeWork) -> None:
    """Answer a tokenize or detokenize request with the model's own tokenizer."""
    if not isinstance(engine, TextEngine):
        raise InvalidRequestError(
            f"{exchange.model} is served by an upstream server, whose tokenizer luodi does"
            " not hold; ask that server",
            param="model",
        )
    if work.ids is not None:
        work.detokenized = engine.detokenize(work.ids)  # ids outside the vocabulary: a 400
        exchange.prompt_tokens = len(work.ids)
        return
    if work.messages is not None:
        # The engine renders the chat exactly as it would for a generation.
        renderer = ChatRenderer(work.messages, work.options)
        request = PromptRequest(
            SamplingParams(max_tokens=1),
            model=exchange.model,
            chat=ChatPrompt(work.messages, work.options, renderer),
        )
        work.tokens = engine.prepare(request)[0].prompt_tokens
        exchange.prompt = renderer.prepared.prompt if renderer.prepared else ""
    else:
        text = work.text or ""
        work.tokens = engine.tokenize(text, add_special=work.add_special_tokens)
        exchange.prompt = text
    exchange.prompt_tokens = len(work.tokens)


def _embedding(exchange: Exchange, work: EmbeddingWork) -> None:
    embedder = exchange.embedder
    assert embedder is not None  # the pipeline resolved it
    if work.dimensions is not None and work.dimensions != embedder.dim:
        raise InvalidRequestError(
            f"{embedder.name} gives {embedder.dim}-dimensional vectors; it cannot shorten"
            f" them to {work.dimensions}",
            param="dimensions",
        )
    counts = embedder.count_tokens(work.texts)
    exchange.prompt_tokens = sum(min(c, embedder.max_tokens) for c in counts)
    exchange.prompt = "\n".join(work.texts)


def detokenized(engine: Engine, tokens: list[int]) -> str:
    """The text of token ids, where the engine has a tokenizer here (else empty)."""
    return engine.detokenize(tokens) if isinstance(engine, TextEngine) else ""


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
