"""Turning a client's request into engine requests: the one default-``max_tokens`` policy.

Every engine's ``prepare`` ends here, so every route and every backend limits an
answer the same way:

1. the client's ``max_tokens`` (or ``max_completion_tokens``) wins;
2. else ``engine.default_max_tokens``, when it is set (capped at what fits, where
   the engine knows that);
3. else as much as fits: up to the end of the context on the embedded engine
   (nothing is reserved for it: KV cells are taken as the answer grows), and no
   ``max_tokens`` at all for an upstream, whose own default is "as much as fits"
   (vLLM refuses prompt + max_tokens above its max_model_len with a 400).
"""

from __future__ import annotations

from luodi.engine.types import GenerationRequest, PromptRequest
from luodi.errors import InvalidRequestError

__all__ = ["completion_limit", "expand", "pass_through"]


def completion_limit(explicit: int | None, default: int | None, room: int | None) -> int | None:
    """The completion limit of one request (see the module docstring).

    Args:
        explicit: The client's limit, None when it named none.
        default: The configured default, None when unset.
        room: Tokens left in the context after the prompt, when the engine knows it
            (the embedded engine); None for an engine that counts its own tokens.

    Returns:
        A limit, or None for "no limit of our own" (only when ``room`` is None).
    """
    if explicit is not None:
        return explicit  # too long for the context is refused with both numbers
    if room is None:
        return default
    return min(room, default) if default is not None else room


def expand(
    request: PromptRequest,
    *,
    max_tokens: int | None,
    prompt_tokens: list[int] | None = None,
    pass_through: bool = False,
) -> list[GenerationRequest]:
    """One ``GenerationRequest`` per choice of ``request``.

    ``prompt_tokens`` is the prompt an engine that tokenizes planned; with
    ``pass_through`` the text prompt or chat messages go as they are, for an engine
    that renders and tokenizes them itself.
    """
    chat = request.chat if pass_through else None
    prompt = request.prompt if pass_through and isinstance(request.prompt, str) else None
    return [
        GenerationRequest(
            list(prompt_tokens or []),
            request.params.for_choice(i, max_tokens=max_tokens),
            prompt=prompt,
            messages=chat.messages if chat is not None else None,
            chat_options=dict(chat.options) if chat is not None else {},
            model=request.model,
            priority=request.priority,
            replayable=request.replayable,
        )
        for i in range(request.n)
    ]


def pass_through(request: PromptRequest) -> list[GenerationRequest]:
    """``prepare`` of an engine that renders and tokenizes itself (an upstream).

    Messages or a text prompt go as they are; token ids are refused (the server
    would read them with a tokenizer luodi cannot check).
    """
    if request.chat is None and not isinstance(request.prompt, str):
        raise InvalidRequestError("this model takes text prompts, not token ids", param="prompt")
    if request.params.prompt_logprobs is not None:
        # Its answer would not say which scores are the prompt's; ask the server directly.
        raise InvalidRequestError(
            "scoring an echoed prompt (echo with logprobs, or max_tokens 0) is served by"
            " embedded models only; send it to this upstream server itself",
            param="echo",
        )
    limit = completion_limit(request.params.max_tokens, request.default_max_tokens, None)
    return expand(request, max_tokens=limit, pass_through=True)
