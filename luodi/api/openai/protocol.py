"""OpenAI wire format of what luodi answers: responses and stream chunks (pydantic).

Request bodies are in ``schemas.py``; these are the bodies going back, as vLLM's
``protocol.py`` types them, so a route builds a typed object instead of a dict.
luodi's extensions stay exactly as clients know them: ``citations`` (grounded
chats), ``schema_errors`` (a ``response_format`` answer checked), ``reasoning_content``
in messages and deltas, and ``finish_reason`` ``"error"`` on a cut stream.

A field OpenAI always sends is always sent, ``null`` included (``logprobs``,
``finish_reason``); an extension or an optional part (``usage`` on a chunk) is left
out when unset: each model lists those in ``OMITTED_WHEN_NONE``. Dump with
``.wire()``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer

from luodi.engine.types import TokenLogprob, Usage

__all__ = [
    "ChatCompletionChoice",
    "ChatCompletionResponse",
    "ChatCompletionStreamChoice",
    "ChatCompletionStreamResponse",
    "ChatLogprobs",
    "CompletionChoice",
    "CompletionLogprobs",
    "CompletionResponse",
    "CompletionStreamResponse",
    "DetokenizeResponse",
    "EmbeddingData",
    "EmbeddingResponse",
    "EmbeddingUsage",
    "TokenizeResponse",
    "UsageInfo",
]


class _Wire(BaseModel):
    OMITTED_WHEN_NONE: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in self.OMITTED_WHEN_NONE:
            if data.get(name, 0) is None:
                del data[name]
        return data

    def wire(self) -> dict[str, Any]:
        """The JSON body, as a dict."""
        return self.model_dump()


class PromptTokensDetails(_Wire):
    cached_tokens: int = 0


class UsageInfo(_Wire):
    """``usage`` of a completion or chat completion."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails = PromptTokensDetails()

    @classmethod
    def of(cls, usage: Usage) -> UsageInfo:
        return cls(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=usage.cached_tokens),
        )


# -- chat ---------------------------------------------------------------------------


class TopLogprob(_Wire):
    token: str
    logprob: float
    bytes: list[int]


class ChatLogprobEntry(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(_Wire):
    content: list[ChatLogprobEntry]

    @classmethod
    def of(cls, entries: list[TokenLogprob]) -> ChatLogprobs:
        def top(token: str, logprob: float) -> TopLogprob:
            return TopLogprob(token=token, logprob=logprob, bytes=list(token.encode()))

        return cls(
            content=[
                ChatLogprobEntry(
                    token=e.token,
                    logprob=e.logprob,
                    bytes=list(e.token.encode()),
                    top_logprobs=[top(t, lp) for t, lp in e.top],
                )
                for e in entries
            ]
        )


class ChatCompletionChoice(_Wire):
    OMITTED_WHEN_NONE = frozenset({"schema_errors"})

    index: int
    message: dict[str, Any]
    """role, content, and where present reasoning_content and tool_calls."""
    logprobs: ChatLogprobs | None = None
    finish_reason: str
    schema_errors: list[str] | None = None


class ChatCompletionResponse(_Wire):
    OMITTED_WHEN_NONE = frozenset({"citations"})

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: UsageInfo
    citations: list[dict[str, Any]] | None = None


class ChatCompletionStreamChoice(_Wire):
    OMITTED_WHEN_NONE = frozenset({"schema_errors"})

    index: int
    delta: dict[str, Any]
    logprobs: ChatLogprobs | None = None
    finish_reason: str | None = None
    schema_errors: list[str] | None = None


class ChatCompletionStreamResponse(_Wire):
    OMITTED_WHEN_NONE = frozenset({"usage", "citations"})

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatCompletionStreamChoice]
    usage: UsageInfo | None = None
    citations: list[dict[str, Any]] | None = None


# -- completions ----------------------------------------------------------------------


class CompletionLogprobs(_Wire):
    """Legacy completions logprobs: parallel lists, one entry per token.

    With ``echo`` the prompt's tokens come first; the very first has no logprob
    (nothing precedes it), so its entries are null, as in OpenAI's and vLLM's answers.
    """

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]

    @classmethod
    def of(
        cls,
        entries: list[TokenLogprob],
        offset: int,
        prompt: list[TokenLogprob | None] | None = None,
        prompt_tokens: list[str] | None = None,
    ) -> CompletionLogprobs:
        """``prompt`` (with the text of each prompt token) leads, echoed from offset 0."""
        out = cls(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])
        if prompt is not None and prompt_tokens is not None:
            at = 0
            for text, scored in zip(prompt_tokens, prompt, strict=True):
                out.tokens.append(text)
                out.token_logprobs.append(scored.logprob if scored else None)
                out.top_logprobs.append(dict(scored.top) if scored else None)
                out.text_offset.append(at)
                at += len(text)
        for entry in entries:
            out.tokens.append(entry.token)
            out.token_logprobs.append(entry.logprob)
            out.top_logprobs.append(dict(entry.top))
            out.text_offset.append(offset)
            offset += len(entry.token)
        return out


class CompletionChoice(_Wire):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None


class CompletionResponse(_Wire):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo


class CompletionStreamResponse(_Wire):
    OMITTED_WHEN_NONE = frozenset({"usage"})

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo | None = None


# -- embeddings -----------------------------------------------------------------------


class EmbeddingData(_Wire):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str
    """Floats, or base64 of little-endian float32 (``encoding_format``)."""


class EmbeddingUsage(_Wire):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(_Wire):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage


class TokenizeResponse(_Wire):
    OMITTED_WHEN_NONE = frozenset({"token_strs"})

    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeResponse(_Wire):
    prompt: str
