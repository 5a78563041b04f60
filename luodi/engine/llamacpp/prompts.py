"""How the embedded engine plans a request: render, tokenize, limit (``Engine.prepare``).

The engine renders no prompt itself: a chat request carries a ``PromptRenderer``
(the API's, over ``luodi.chat``) that is handed the engine's ``TemplateMetadata``.
The rendered text is tokenized with special tokens parsed and BOS added once; a text
completion prompt is tokenized as it is; token ids are taken as they are.
"""

from __future__ import annotations

from typing import Protocol

from luodi.engine.planning import completion_limit, expand
from luodi.engine.types import (
    GenerationRequest,
    PromptRequest,
    RenderedPrompt,
    TemplateMetadata,
)
from luodi.errors import ContextLengthError, InvalidRequestError

__all__ = ["prepare_embedded"]


class _Tokenizing(Protocol):
    """What planning needs of the embedded engine."""

    @property
    def max_model_len(self) -> int: ...

    @property
    def template_metadata(self) -> TemplateMetadata: ...

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]: ...

    def spells_control(self, text: str) -> bool: ...

    def tokenize_chat(self, rendered: RenderedPrompt) -> list[int]: ...


def prepare_embedded(
    engine: _Tokenizing, request: PromptRequest, default_max_tokens: int | None
) -> list[GenerationRequest]:
    """The engine requests of ``request``: one per choice, token prompts, a limit each.

    Raises:
        ContextLengthError: chat messages that leave no room for one completion token.
        InvalidRequestError: a request with neither messages nor a prompt.
    """
    grammar = None
    if request.chat is not None:
        rendered = request.chat.render(engine.template_metadata, engine.spells_control)
        tokens = engine.tokenize_chat(rendered)
        grammar = rendered.grammar
        if engine.max_model_len - len(tokens) < 1:
            raise ContextLengthError(
                f"this model's maximum context length is {engine.max_model_len} tokens, but the"
                f" messages take {len(tokens)} tokens; shorten them",
                param="messages",
            )
    elif isinstance(request.prompt, str):
        tokens = engine.tokenize(request.prompt)
    elif request.prompt is not None:
        tokens = list(request.prompt)
    else:
        raise InvalidRequestError("the request has neither messages nor a prompt", param="prompt")
    limit = completion_limit(
        request.params.max_tokens, default_max_tokens, engine.max_model_len - len(tokens)
    )
    planned = expand(request, max_tokens=limit, prompt_tokens=tokens)
    if grammar is not None:
        for each in planned:
            each.params.grammar = grammar
    return planned
