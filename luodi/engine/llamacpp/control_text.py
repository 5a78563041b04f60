"""Client text tokenized as plain text, so it cannot spell a turn marker.

A chat prompt is tokenized with special tokens parsed, for the template's own
markers. The spans a ``RenderedPrompt`` marks as client text are tokenized without
parsing them: ``<end_of_turn>`` typed by a user (or found in a retrieved document)
becomes the characters it is, not the control token. Whether the template kept the
marked text whole is checked by counting control tokens against a rendering with
that text replaced; a request where they differ is refused.
"""

from __future__ import annotations

import llama_cpp

from luodi.engine.llamacpp.model import LlamaModel
from luodi.engine.types import RenderedPrompt
from luodi.errors import InvalidRequestError

__all__ = ["control_count", "spells_control", "tokenize_isolated"]


def control_count(model: LlamaModel, tokens: list[int]) -> int:
    """How many of ``tokens`` are control tokens (turn markers, BOS, EOS, ...)."""
    vocab = model.vocab
    return sum(1 for t in tokens if llama_cpp.llama_vocab_is_control(vocab, t))


def spells_control(model: LlamaModel, text: str) -> bool:
    """Whether ``text`` holds a control token when special tokens are parsed."""
    return control_count(model, model.tokenize(text, add_special=False)) > 0


def tokenize_isolated(model: LlamaModel, prompt: RenderedPrompt) -> list[int]:
    """The prompt's tokens: its ``plain_spans`` as plain text, the rest with specials.

    Raises:
        InvalidRequestError: the template printed the marked text somewhere it did not
            stay whole, so the prompt holds more control tokens than its reference.
    """
    text = prompt.text
    tokens: list[int] = []
    pos = 0
    for start, end in prompt.plain_spans:
        if start > pos:
            tokens += model.tokenize(text[pos:start], add_special=False)
        tokens += model.tokenize(text[start:end], add_special=False, parse_special=False)
        pos = end
    if pos < len(text):
        tokens += model.tokenize(text[pos:], add_special=False)
    if prompt.reference is not None:
        expected = control_count(model, model.tokenize(prompt.reference, add_special=False))
        if control_count(model, tokens) != expected:
            raise InvalidRequestError(
                "a message spells the model's control tokens in a place the chat template"
                " does not keep apart from its own; remove them",
                param="messages",
            )
    return tokens
