"""One request's passage through the gateway pipeline: what each stage leaves the next.

An ``Exchange`` is opened per request by ``Pipeline.open`` and carries typed fields
instead of string-keyed metadata: the wire request's input (one of ``ChatWork``,
``CompletionWork``, ``EmbeddingWork``, ``TokenizeWork``), what grounding, protection
and planning made of it, and what the audit record will say.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from luodi.chat import PreparedChat
from luodi.embedding import Embedder
from luodi.engine.base import Engine
from luodi.engine.types import (
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    Priority,
    SamplingParams,
    Usage,
)
from luodi.errors import ServiceUnavailableError
from luodi.privacy import ProtectedInput
from luodi.security import Principal, Reservation

__all__ = [
    "ChatWork",
    "CompletionWork",
    "EmbeddingWork",
    "Exchange",
    "Primed",
    "TokenizeWork",
    "Work",
]

Primed = tuple[GenerationEvent, AsyncIterator[GenerationEvent]]
"""A started generation: its first event and the rest of its stream."""


@dataclass
class ChatWork:
    """A chat completion: messages (grounded, then masked, in place) and options."""

    messages: list[dict[str, Any]]
    options: dict[str, Any]
    """tools, tool_choice, response_format, chat_template_kwargs; unset ones left out."""
    params: SamplingParams
    """``max_tokens`` is the client's limit, None when it named none."""
    n: int = 1
    stream: bool = False
    kb: list[str] = field(default_factory=list)
    kb_top_k: int = 5
    conversation: str | None = None
    """The client's own conversation id (X-Luodi-Conversation, else the ``user`` field):
    keys an assistant's session (``luodi.apps.support``)."""


@dataclass
class CompletionWork:
    """A text completion: each prompt (text or token ids) its own sequence, n choices each."""

    prompts: list[str | list[int]]
    params: SamplingParams
    n: int = 1
    stream: bool = False


@dataclass
class EmbeddingWork:
    """Texts to embed."""

    texts: list[str]
    dimensions: int | None = None
    vectors: list[Any] = field(default_factory=list)
    """The embedder's rows, once run."""


@dataclass
class TokenizeWork:
    """Text (or a chat) to turn into token ids, or ids to turn back into text (vLLM's
    /tokenize and /detokenize): only a model whose tokenizer is here can answer."""

    text: str | None = None
    messages: list[dict[str, Any]] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """With ``messages``: chat options the template reads (tools, chat_template_kwargs)."""
    add_special_tokens: bool = True
    ids: list[int] | None = None
    """Ids to detokenize; the other fields are then unused."""
    tokens: list[int] = field(default_factory=list)
    """The answer of a tokenize request."""
    detokenized: str = ""
    """The answer of a detokenize request."""


Work = ChatWork | CompletionWork | EmbeddingWork | TokenizeWork


@dataclass
class Exchange:
    """One model invocation: the request, what the stages made of it, its audit record."""

    principal: Principal
    endpoint: str
    source_ip: str
    model: str
    work: Work
    conversation_id: str = ""
    """Scopes pseudonyms; the tenant is part of it, so tenants never share a map."""
    leaves_premises: bool = False
    """The model has a backend off the premises: protection is forced."""
    started: float = field(default_factory=time.monotonic)
    engine: Engine | None = None
    embedder: Embedder | None = None
    # -- what the stages leave ------------------------------------------------------
    citations: list[dict[str, Any]] = field(default_factory=list)
    """Ground: the passages the answer may cite."""
    protected: list[ProtectedInput] = field(default_factory=list)
    """Protect: every masked input, the last one restores the answer."""
    masked: bool = False
    """Protect ran over every input (the router may then send it off the premises)."""
    pii_findings: dict[str, int] = field(default_factory=dict)
    requests: list[GenerationRequest] = field(default_factory=list)
    """Route: one engine request per choice (per prompt, for completions)."""
    chat: PreparedChat | None = None
    """Route: the chat as luodi rendered it, when the engine took a rendered prompt
    (its output is then parsed here: thinking, tool calls)."""
    prompt_tokens: int = 0
    """Route: what Limit admits against the quotas (an estimate for upstreams)."""
    reservation: Reservation | None = None
    """Limit: the tokens held in the quotas, settled by Audit however the request ends."""
    primed: list[Primed] = field(default_factory=list)
    """Launch: every choice started, with its first event."""
    generated: int = 0
    """Launch: completion tokens the engines emitted so far, counted as they come, so a
    stream the client drops is charged what it was sent."""
    # -- what the audit record says -------------------------------------------------
    prompt: str = ""
    response: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    backend: str | None = None
    notes: list[str] = field(default_factory=list)
    """What the record's reason says of an allowed request: failovers, a cut stream."""
    aborted: str | None = None
    """Why the server ended this request early (shutting down), if it did."""
    closed: bool = False
    """Its audit record is written."""

    @property
    def billed(self) -> Usage:
        """The usage to charge and audit: the engines' own count, or what was counted on
        the way when a request ended before its engines reported (a hang-up, an error)."""
        prompt = self.usage.prompt_tokens or (self.prompt_tokens if self.primed else 0)
        completion = max(self.usage.completion_tokens, self.generated)
        return Usage(prompt, completion, self.usage.cached_tokens)

    @property
    def priority(self) -> Priority:
        return Priority(self.principal.priority)

    def abort(self, reason: str) -> None:
        """End this request's generations early (the drain); ``checked`` says why."""
        self.aborted = reason
        if self.engine is not None:
            for req in self.requests:
                self.engine.abort(req.request_id)

    def checked(self, event: GenerationEvent) -> GenerationEvent:
        """``event``, with a cancellation this exchange's ``abort`` caused made an error."""
        if self.aborted and event.finish_reason is FinishReason.CANCELLED:
            event.finish_reason = FinishReason.ERROR
            event.error = self.aborted
        return event

    def raise_if_aborted(self) -> None:
        """503 with Retry-After for a non-streaming request the server ended early."""
        if self.aborted:
            raise ServiceUnavailableError(self.aborted, retry_after=1.0)
