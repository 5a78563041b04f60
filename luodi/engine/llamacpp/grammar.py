"""Grammar-constrained decoding: llguidance token masks over the model's vocabulary.

llama.cpp's own grammar sampler checks candidate tokens against its grammar stacks one
by one, and with Gemma 3's 262k-token vocabulary that walk costs more than a small
model's decode step. llguidance (the engine behind llama.cpp's ``LLAMA_LLGUIDANCE``
build) computes the whole set of allowed next tokens as a bitmask, walking a token
trie with a lazily built lexer: tens of microseconds per step for JSON.

:class:`GrammarVocab` is the model's vocabulary as llguidance sees it, built once per
model (one pass over every token, about a second for 262k tokens) on first use;
:class:`TokenMask` is one request's grammar state: which tokens may come next.
"""

from __future__ import annotations

import ctypes
import json

import llama_cpp
import llguidance
import numpy as np

from luodi.engine.llamacpp.model import LlamaModel
from luodi.errors import EngineError, InvalidRequestError

__all__ = ["GrammarVocab", "TokenMask", "llguidance_grammar"]

_BIT = np.arange(32, dtype=np.int64)
_PIECE_BYTES = 1024  # longer than any token's text
_SPARSE_WORDS = 256  # mask words with a bit set, past which unpacking them all is cheaper


def llguidance_grammar(text: str) -> str:
    """The grammar in a form ``LLMatcher`` takes: llguidance JSON or Lark as is, GBNF converted.

    ``luodi.chat`` writes llguidance's JSON form (``response_format``) and Lark (tool
    calls); a GBNF grammar, as llama.cpp's sampler took, is translated to Lark.

    Raises:
        InvalidRequestError: GBNF that cannot be translated.
    """
    if text.lstrip().startswith("{"):
        return text
    try:
        return llguidance.grammar_from("grammar", text)
    except ValueError as exc:
        raise InvalidRequestError(
            f"the output grammar could not be parsed: {exc}", param="grammar"
        ) from exc


class GrammarVocab:
    """The model's vocabulary in llguidance's form, built on first use and then kept.

    End-of-generation tokens (Gemma's ``<eos>`` and ``<end_of_turn>``) are all
    llguidance end tokens: allowed exactly when the grammar is complete.
    """

    def __init__(self, model: LlamaModel) -> None:
        self._model = model
        self._tokenizer: llguidance.LLTokenizer | None = None
        self.n_vocab = model.n_vocab
        self.mask_words = (model.n_vocab + 31) // 32
        self.end_tokens = model.eog_tokens

    @property
    def tokenizer(self) -> llguidance.LLTokenizer:
        """llguidance's tokenizer; the first call builds it (seconds, holding the GIL)."""
        if self._tokenizer is None:
            vocab = self._model.vocab
            self._tokenizer = llguidance.LLTokenizer.from_llamacpp(  # type: ignore[attr-defined]
                tokens=_token_bytes(vocab, self.n_vocab),
                vocab_ptr=vocab,
                tokenize_fptr=ctypes.cast(
                    llama_cpp.llama_cpp._lib.llama_tokenize, ctypes.c_void_p
                ).value,
                eos_token=sorted(self.end_tokens),
                slices=None,  # llguidance's general slices: 20-30x faster masks inside strings
            )
        return self._tokenizer


def _token_bytes(vocab: llama_cpp.llama_vocab_p, n_vocab: int) -> list[bytes]:
    """Every token's bytes, special tokens marked with a leading 0xFF as llguidance expects.

    As ``llguidance.llamacpp.lltokenizer_from_vocab`` does, but through
    ``llama_vocab_get_attr``: its helper calls the deprecated ``llama_token_get_attr``,
    whose Python wrapper issues a DeprecationWarning for each of the 262k tokens.
    """
    buf = ctypes.create_string_buffer(_PIECE_BYTES)
    to_piece, get_attr = llama_cpp.llama_token_to_piece, llama_cpp.llama_vocab_get_attr
    control, user = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL, llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    tokens: list[bytes] = []
    for token in range(n_vocab):
        n = to_piece(vocab, token, buf, _PIECE_BYTES, 0, True)
        if n < 0:
            raise EngineError(f"token {token} is longer than {_PIECE_BYTES} bytes")
        piece = buf.raw[:n]
        attr = get_attr(vocab, token)
        # Control tokens, and user-defined ones that look like them (<...>), are special.
        if attr & control or (attr & user and piece.startswith(b"<") and piece.endswith(b">")):
            piece = b"\xff" + piece
        tokens.append(piece)
    return tokens


class TokenMask:
    """One request's grammar: the tokens it allows next, advanced token by token.

    Either :meth:`try_accept` a likely token (cheap: the grammar reads its bytes), or
    :meth:`compute` the mask (a pass over the vocabulary's token trie), pick among
    :meth:`allowed`, and :meth:`accept` the token drawn.

    Raises:
        InvalidRequestError: the grammar is invalid or uses what llguidance cannot enforce.
    """

    def __init__(self, vocab: GrammarVocab, grammar: str) -> None:
        try:
            self._matcher = llguidance.LLMatcher(
                vocab.tokenizer, llguidance_grammar(grammar), log_level=0
            )
        except (ValueError, TypeError) as exc:
            raise InvalidRequestError(
                f"the output grammar could not be parsed: {exc}", param="grammar"
            ) from exc
        if self._matcher.is_error():
            raise InvalidRequestError(
                f"the output grammar could not be parsed: {self._matcher.get_error()}",
                param="grammar",
            )
        self._n_vocab = vocab.n_vocab
        self._end_tokens = vocab.end_tokens
        self._words = np.zeros(vocab.mask_words, dtype=np.int32)

    def try_accept(self, token: int) -> bool:
        """Advance past ``token`` if the grammar allows it; otherwise change nothing."""
        if token in self._end_tokens:
            # llguidance's try_consume never takes an end token: it is allowed exactly
            # when the output so far is complete.
            if not self._matcher.is_accepting():
                return False
            self.accept(token)
            return True
        return bool(self._matcher.try_consume_tokens([token]) == 1)

    def compute(self) -> None:
        """Compute the mask for the next token (llguidance drops the GIL meanwhile)."""
        self._matcher.unsafe_compute_mask_ptr(self._words.ctypes.data, self._words.nbytes)

    def allows(self, token: int) -> bool:
        """Whether the last computed mask allows ``token``."""
        return bool((int(self._words[token >> 5]) >> (token & 31)) & 1)

    def allowed(self) -> np.ndarray:
        """Every token id the last computed mask allows, ascending.

        Raises:
            EngineError: the grammar allows nothing (its matcher failed).
        """
        words = np.flatnonzero(self._words)
        if words.size == 0:
            raise EngineError(f"the grammar allows no next token: {self._error()}")
        if words.size > _SPARSE_WORDS:  # inside a string most of the vocabulary is allowed
            unpacked = np.unpackbits(self._words.view(np.uint8), bitorder="little")
            dense: np.ndarray = np.flatnonzero(unpacked[: self._n_vocab])
            return dense
        bits = (self._words[words].astype(np.int64)[:, None] >> _BIT) & 1
        ids = (words[:, None] * 32 + _BIT)[bits.astype(bool)]
        allowed: np.ndarray = ids[ids < self._n_vocab]
        return allowed

    def accept(self, token: int) -> None:
        """Advance the grammar past ``token``.

        Raises:
            EngineError: the grammar refuses the token (a masking bug, never a user error).
        """
        if not self._matcher.consume_token(token):
            raise EngineError(f"the grammar refused token {token}: {self._error()}")

    def _error(self) -> str:
        return self._matcher.get_error() or json.dumps(self._matcher.stop_reason())
