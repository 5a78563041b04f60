"""Prompt-lookup drafts: guess the next tokens by finding the context's tail earlier in it.

Answers grounded in retrieved passages, code edits and multi-turn chats copy long runs
of their own context. When the last ``n`` tokens (``n`` from ``ngram_max`` down to
``ngram_min``) occurred before, the tokens that followed that occurrence are a draft:
the engine decodes them beside the real next token in one batch and keeps the prefix
the model agrees with (vLLM's ``ngram`` and llama.cpp's prompt-lookup decoding).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["PromptLookup"]


class PromptLookup:
    """An n-gram index over one sequence's tokens, grown as its output grows.

    Each n-gram size maps an n-gram to the position after its latest occurrence that
    has a token following it, so a lookup is one dictionary probe per size.
    """

    def __init__(self, ngram_min: int, ngram_max: int) -> None:
        if not 1 <= ngram_min <= ngram_max:
            raise ValueError(f"need 1 <= ngram_min ({ngram_min}) <= ngram_max ({ngram_max})")
        self.ngram_min = ngram_min
        self.ngram_max = ngram_max
        self._sizes = range(ngram_max, ngram_min - 1, -1)
        self._index: dict[int, dict[tuple[int, ...], int]] = {n: {} for n in self._sizes}
        self._tokens: list[int] = []

    def propose(self, prompt: Sequence[int], output: Sequence[int], k: int) -> list[int]:
        """Up to ``k`` draft tokens to follow ``prompt + output``; [] when nothing matches.

        ``prompt + output`` must extend what earlier calls saw (a sequence only grows).
        """
        self._extend(prompt, output)
        tokens = self._tokens
        end = len(tokens)
        if k <= 0 or end < self.ngram_min + 1:
            return []
        for n in self._sizes:
            if n >= end:
                continue
            start = self._index[n].get(tuple(tokens[end - n :]))
            if start is not None:
                return tokens[start : start + k]
        return []

    def _extend(self, prompt: Sequence[int], output: Sequence[int]) -> None:
        tokens = self._tokens
        known = len(tokens)
        total = len(prompt) + len(output)
        if known >= total:
            return
        if known < len(prompt):
            tokens.extend(prompt[known:])
            tokens.extend(output)
        else:
            tokens.extend(output[known - len(prompt) :])
        # Index every n-gram that now has a token after it: those ending before the last.
        for n, index in self._index.items():
            for stop in range(max(n, known), len(tokens)):
                index[tuple(tokens[stop - n : stop])] = stop
