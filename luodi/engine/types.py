"""The engine contract's data: what a generation asks for and what it streams back.

These types are plain dataclasses: the engine core knows nothing of HTTP or JSON.
"""

from __future__ import annotations

import enum
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

__all__ = [
    "ChatPrompt",
    "FinishReason",
    "GenerationEvent",
    "GenerationRequest",
    "ModelInfo",
    "Priority",
    "PromptRenderer",
    "PromptRequest",
    "RenderedPrompt",
    "SamplingParams",
    "TemplateMetadata",
    "TokenLogprob",
    "Usage",
]


class Priority(enum.IntEnum):
    """Admission class: higher classes are admitted first, no class starves."""

    LOW = 0
    NORMAL = 1
    HIGH = 2


class FinishReason(enum.StrEnum):
    """Why a generation ended, with OpenAI's names."""

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CANCELLED = "cancelled"
    ERROR = "error"


@dataclass(slots=True)
class SamplingParams:
    """How to pick each next token; defaults match OpenAI's API."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    penalty_last_n: int = 64
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    max_tokens: int | None = 16
    """Most completion tokens. None: as many as the engine allows (an upstream is sent
    none; the embedded engine runs to the end of the context). ``Engine.prepare``
    applies the one default policy (``luodi.engine.planning.completion_limit``)."""
    ignore_eos: bool = False
    logit_bias: dict[int, float] = field(default_factory=dict)
    logprobs: int | None = None
    """How many top alternatives to report per token (None: no logprobs)."""
    prompt_logprobs: int | None = None
    """Also score the prompt's own tokens, with this many top alternatives each (None:
    don't). The embedded engine computes them while prefilling, so such a prompt does
    not borrow a cached prefix; with ``max_tokens`` 0 it stops after the prompt."""
    grammar: str | None = None
    """A grammar the output must follow: llguidance's form (``luodi.chat.structured``
    compiles JSON schemas to it), Lark, or llama.cpp's GBNF."""
    speculative: bool = True
    """Let the embedded engine draft tokens from the context and verify them in one
    batch (``engine.speculative``); the output is the same either way. False opts out."""

    @property
    def greedy(self) -> bool:
        """True when sampling reduces to argmax."""
        return self.temperature <= 0.0 or self.top_k == 1

    def for_choice(self, index: int, *, max_tokens: int | None) -> SamplingParams:
        """These parameters for choice ``index`` of a request: seeds differ per choice."""
        seed = None if self.seed is None else self.seed + index
        return replace(self, seed=seed, max_tokens=max_tokens)


_request_ids = itertools.count()


def _next_request_id() -> str:
    return f"req-{next(_request_ids)}"


@dataclass(slots=True)
class GenerationRequest:
    """One generation: a prompt plus sampling parameters.

    The embedded engine needs ``prompt_tokens``. Upstream engines (vLLM, a cloud
    API) render and tokenize themselves, so they read ``prompt`` or ``messages``
    and ``chat_options`` (tools, tool_choice, response_format,
    chat_template_kwargs) as OpenAI wire values.
    """

    prompt_tokens: list[int] = field(default_factory=list)
    params: SamplingParams = field(default_factory=SamplingParams)
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    chat_options: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    request_id: str = field(default_factory=_next_request_id)
    priority: Priority = Priority.NORMAL
    arrival_time: float = field(default_factory=time.monotonic)
    backend: str | None = None
    """The backend that served it, written by the router (for the audit record)."""
    failovers: list[str] = field(default_factory=list)
    """Backends the router gave up on before one served, each with why."""
    pii_protected: bool = False
    """The gateway masked the prompt already: the router may send it off the premises."""
    replayable: bool = False
    """Nothing of the answer reaches the client before it ends (a non-streaming
    request), so the router may run it again, from the start, on another backend
    when the first one fails mid-answer."""
    pin_prefix: str | None = None
    """Keep this prompt's KV pinned in the embedded engine's prefix cache under this
    key once it is computed (an app's fixed prompt head: a support assistant's persona
    or intent block); a later pin under the same key replaces it. Engines without a
    prefix cache ignore it."""


@dataclass(slots=True, frozen=True)
class RenderedPrompt:
    """A chat request rendered with a model's template, for an engine that tokenizes."""

    text: str
    grammar: str | None = None
    """The grammar the answer must follow (a JSON schema or a forced tool call)."""
    plain_spans: tuple[tuple[int, int], ...] = ()
    """[start, end) spans of client text that spells control tokens: tokenized as
    plain text, so it cannot forge a turn (luodi/chat/isolation.py)."""
    reference: str | None = None
    """With ``plain_spans``: the prompt with that text replaced; the tokenized prompt
    must have as many control tokens as it, or the template undid the isolation."""


class PromptRenderer(Protocol):
    """Renders one chat request with the template a model's metadata names.

    The API passes one in (``luodi.chat`` renders), so the engine renders no prompts
    and imports nothing of ``chat``; an engine that takes messages never calls it.
    """

    def __call__(
        self, template: TemplateMetadata, isolate: Callable[[str], bool] | None = None
    ) -> RenderedPrompt:
        """Render; ``isolate`` flags client strings that spell the model's control tokens."""
        ...


@dataclass(slots=True)
class ChatPrompt:
    """A chat request's input: OpenAI messages, their options, and how to render them."""

    messages: list[dict[str, Any]]
    options: dict[str, Any]
    """tools, tool_choice, response_format, chat_template_kwargs as wire values; unset
    ones left out."""
    render: PromptRenderer


@dataclass(slots=True)
class PromptRequest:
    """One client request before an engine plans it (``Engine.prepare``).

    Exactly one of ``chat`` and ``prompt`` is set. ``params.max_tokens`` is the
    client's own limit, None when it named none; ``default_max_tokens`` is the
    configured default (``engine.default_max_tokens``).
    """

    params: SamplingParams
    chat: ChatPrompt | None = None
    prompt: str | list[int] | None = None
    n: int = 1
    model: str | None = None
    priority: Priority = Priority.NORMAL
    replayable: bool = False
    default_max_tokens: int | None = None


@dataclass(slots=True)
class TokenLogprob:
    """One generated token with its log-probability and the top alternatives."""

    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass(slots=True)
class Usage:
    """Token counts of one generation."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens served from the prefix cache instead of being computed."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class GenerationEvent:
    """A step of one generation's stream.

    ``text`` is a UTF-8-safe delta (never half a character, never part of a stop
    string). The last event has ``finish_reason`` and ``usage`` set.
    """

    request_id: str
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    error: str | None = None
    """Set with ``finish_reason=ERROR``: what went wrong for this request only."""
    queued_s: float | None = None
    """On the first event: seconds spent waiting for admission."""
    reasoning: str = ""
    """Reasoning text an upstream engine already split out (vLLM's reasoning_content)."""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """Tool-call deltas an upstream engine already parsed, in OpenAI's streaming shape."""
    backend: str | None = None
    """Which backend produced the event (for the audit record)."""
    prompt_logprobs: list[TokenLogprob | None] | None = None
    """On the first event, when ``prompt_logprobs`` was asked: one entry per prompt
    token, None for the first (nothing precedes it)."""

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass(slots=True, frozen=True)
class ModelInfo:
    """What a served model is, for /v1/models and routing."""

    name: str
    context_length: int
    quantization: str | None = None
    size_bytes: int | None = None
    capabilities: tuple[str, ...] = ("chat", "completion")
    backend: str = "llamacpp"
    owned_by: str = "luodi"


@dataclass(slots=True, frozen=True)
class TemplateMetadata:
    """What a loaded model says about its prompt format, for ``luodi.chat`` to build from.

    The engine core renders no prompts: it reads these values from the model and its
    settings, and ``ChatTemplate.for_model`` (in ``luodi.chat``) turns them into the
    template the API renders chat requests with. That keeps ``engine`` from importing
    ``chat``.
    """

    configured: str | None
    """``engine.chat_template``: a built-in template name or a template file."""
    gguf_template: str | None
    """The GGUF's ``tokenizer.chat_template``, when it carries one."""
    architecture: str | None
    """The GGUF's ``general.architecture``, for a built-in template when it carries none."""
    bos_token: str = ""
    """The BOS token's text; templates may print it."""
    eos_token: str = ""
    """The EOS token's text."""
    special_tokens: tuple[tuple[str, str], ...] = ()
    """``bos``/``eos`` as the vocabulary spells them (``<bos>``), for clients that
    tokenize themselves (/tokenizer_info); templates print ``bos_token`` above."""
