"""OpenAI wire format: request and response bodies as pydantic models.

Bounds live here, so a bad field is rejected with a 400 that names it before any
work starts. Unknown fields are ignored, as OpenAI's API does, except those we
refuse on purpose (``best_of``, ``suffix``), which get a clear 400.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "CompletionRequest",
    "DetokenizeRequest",
    "EmbeddingRequest",
    "ResponseFormat",
    "StreamOptions",
    "TokenizeRequest",
    "Tool",
    "make_id",
    "now",
]

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


def make_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogate_at(value: Any, path: str = "") -> str | None:
    """Where in ``value`` a string holds a lone surrogate, as ``[0].content``; None if nowhere."""
    if isinstance(value, str):
        return path if _SURROGATE.search(value) else None
    items: Any = ()
    if isinstance(value, dict):
        items = ((f".{k}", v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    for step, item in items:
        found = _surrogate_at(item, path + step)
        if found is not None:
            return found
    return None


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_lone_surrogates(cls, value: Any) -> Any:
        # JSON can spell "\ud800"; no UTF-8 text can hold it, so it would fail deep
        # inside (a tokenizer, a digest) as a 500 instead of the client's 400.
        where = _surrogate_at(value)
        if where is not None:
            raise ValueError(
                f"text at {where or 'this field'} holds a lone surrogate, which is not"
                " valid Unicode; send UTF-8 text"
            )
        return value


class StreamOptions(_Body):
    include_usage: bool = False
    continuous_usage_stats: bool = False


class _Sampling(_Body):
    """Fields shared by completions and chat completions."""

    model: str = Field(min_length=1)
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] = 1.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    n: Annotated[int, Field(ge=1, le=16)] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] = 0.0
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] = 0.0
    logit_bias: dict[str, Annotated[float, Field(ge=-100.0, le=100.0)]] | None = None
    seed: int | None = None
    user: str | None = None
    # Extensions shared with vLLM and llama.cpp's server.
    top_k: Annotated[int, Field(ge=0)] = 0
    min_p: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    repetition_penalty: Annotated[float, Field(gt=0.0, le=2.0)] = 1.0
    ignore_eos: bool = False
    stop_token_ids: list[int] | None = None
    speculative: bool = True
    """luodi: False opts this request out of speculative decoding (same output, no drafts)."""

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 16:
            raise ValueError("at most 16 stop sequences are allowed")
        return value

    @property
    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class CompletionRequest(_Sampling):
    """POST /v1/completions."""

    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: Annotated[int, Field(ge=0)] | None = 16
    """0 only with ``echo``: the prompt is scored (with ``logprobs``) and nothing generated."""
    logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    echo: bool = False
    best_of: int | None = None
    suffix: str | None = None


class FunctionCall(_Body):
    name: str
    arguments: str


class ToolCall(_Body):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Body):
    """One message; content is a string, a list of parts, or absent for tool calls."""

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


class FunctionDefinition(_Body):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Body):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class JsonSchemaFormat(_Body):
    name: str = "response"
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class ChatCompletionRequest(_Sampling):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    logprobs: bool = False
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    # Knowledge-base grounding (luodi extension).
    kb: list[str] | None = None
    kb_top_k: Annotated[int, Field(ge=1, le=50)] = 5

    @property
    def completion_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class EmbeddingRequest(_Body):
    """POST /v1/embeddings."""

    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = None


class TokenizeRequest(_Body):
    """POST /tokenize (vLLM's): text, or chat messages rendered as for a generation.

    ``model`` may be left out on a server that serves one model (lm-eval's remote
    tokenizer leaves it out).
    """

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    add_special_tokens: bool | None = None
    """Default True for a prompt (BOS added), as vLLM; a chat's template places its own."""
    add_generation_prompt: bool = True
    tools: list[dict[str, Any]] | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    return_token_strs: bool = False


class DetokenizeRequest(_Body):
    """POST /detokenize (vLLM's)."""

    model: str | None = None
    tokens: list[int]
