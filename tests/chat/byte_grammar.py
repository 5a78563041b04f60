"""Run an llguidance grammar over text without a model: one token per byte.

The engine enforces grammars token by token on the model's vocabulary; here a
256-token vocabulary (one per byte, plus an end token) checks, without any model,
whether a grammar luodi builds accepts a string.
"""

from __future__ import annotations

from functools import cache
from typing import ClassVar

from llguidance import LLMatcher, LLTokenizer, TokenizerWrapper

END = 256


class _Bytes:
    """The smallest tokenizer llguidance takes: byte i is token i."""

    eos_token_id = END
    bos_token_id = None
    tokens: ClassVar = [bytes([i]) for i in range(256)] + [b"\xff<end>"]  # \xff: special
    special_token_ids: ClassVar = [END]

    def __call__(self, text: str | bytes) -> list[int]:
        return list(text.encode() if isinstance(text, str) else text)


@cache
def byte_tokenizer() -> LLTokenizer:
    return LLTokenizer(TokenizerWrapper(_Bytes()))


def accepts(grammar: str, text: str) -> bool:
    """Whether ``grammar`` takes the whole of ``text`` and may end there."""
    matcher = LLMatcher(byte_tokenizer(), grammar, log_level=0)
    assert not matcher.is_error(), matcher.get_error()
    return matcher.consume_tokens(list(text.encode())) and matcher.is_accepting()
