"""How one multiple-choice item is answered: log-likelihood of each choice, or a chat pick.

Log-likelihood, two ways to the same number:

- ``EchoScorer``: lm-eval's ``local-completions`` request. ``prompt`` is context +
  continuation, ``echo`` with ``logprobs`` gives a log-probability for every prompt
  token, and the continuation's tokens (found by ``text_offset``) are summed. Needs an
  endpoint that scores prompt tokens (luodi, vLLM, llama.cpp's server, OpenAI's legacy
  models).
- ``ForcedTokenScorer``: for endpoints that give logprobs for generated tokens only.
  With the model's tokenizer here, each continuation
  token is forced in turn: the prompt as token ids up to it, ``max_tokens`` 1, greedy,
  ``logit_bias`` +100 on it. The reported logprob is the model's unbiased one (luodi
  computes logprobs from the raw logits), so the sum is the same quantity; it costs one
  request per continuation token, each a one-token decode behind the prefix cache.

Generate: ``ChatChooser`` asks ``/v1/chat/completions`` for ``{"answer": "<letter>"}``,
the letter restricted by a ``response_format`` JSON schema, and maps it back by exact
match: the mode for chat-only endpoints, reported apart from log-likelihood.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from luodi.evaluation.endpoint import Endpoint, EndpointError
from luodi.evaluation.tasks import LETTERS, Item, lettered

__all__ = [
    "ChatChooser",
    "ChoiceScorer",
    "EchoScorer",
    "ForcedTokenScorer",
    "Score",
    "extract_letter",
]


@dataclass(frozen=True, slots=True)
class Score:
    """A continuation's summed log-probability, and whether greedy decoding gives it."""

    logprob: float
    greedy: bool


class ChoiceScorer(Protocol):
    """Scores a continuation after a context."""

    async def score(self, context: str, continuation: str) -> Score: ...


class EchoScorer:
    """Prompt logprobs through ``echo``: one request per (context, continuation)."""

    def __init__(self, endpoint: Endpoint, *, seed: int = 1234) -> None:
        self.endpoint = endpoint
        self.seed = seed

    async def score(self, context: str, continuation: str) -> Score:
        prompt = context + continuation
        answer = await self.endpoint.post(
            "/completions",
            {
                "prompt": prompt,
                "max_tokens": 1,
                "temperature": 0.0,
                "logprobs": 1,
                "echo": True,
                "seed": self.seed,
            },
        )
        lp = (answer.get("choices") or [{}])[0].get("logprobs") or {}
        offsets: list[int] = lp.get("text_offset") or []
        values: list[float | None] = lp.get("token_logprobs") or []
        tops: list[dict[str, float] | None] = lp.get("top_logprobs") or []
        if not offsets or offsets[0] >= len(prompt):
            raise EndpointError(
                f"{self.endpoint.base_url}/completions gave no logprobs for prompt tokens"
                " with echo; score with the model's tokenizer instead (--tokenizer GGUF)"
            )
        total, greedy = 0.0, True
        for i, offset in enumerate(offsets):
            # Tokens from the continuation's start to the prompt's end; the token that
            # straddles the boundary (a space glued to the last context word) counts too.
            end = offsets[i + 1] if i + 1 < len(offsets) else len(prompt) + 1
            if end <= len(context) or offset >= len(prompt):
                continue
            value = values[i]
            if value is None:
                raise EndpointError("the endpoint gave a null logprob inside the continuation")
            total += value
            top = tops[i] if i < len(tops) else None
            if top and max(top.values()) > value + 1e-6:
                greedy = False
        return Score(total, greedy)


class ForcedTokenScorer:
    """Continuation tokens forced one by one with ``logit_bias``; needs the tokenizer."""

    def __init__(
        self,
        endpoint: Endpoint,
        tokenize: Callable[[str, bool], list[int]],
        *,
        seed: int = 1234,
    ) -> None:
        self.endpoint = endpoint
        self.tokenize = tokenize
        self.seed = seed

    def split(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Context and continuation token ids, as lm-eval splits them.

        The whole string is tokenized once; where its head is the context's own
        tokens, the rest is the continuation (the usual case, with the space leading
        the continuation); otherwise the two are tokenized apart.
        """
        ctx = self.tokenize(context, True)
        whole = self.tokenize(context + continuation, True)
        if whole[: len(ctx)] == ctx and len(whole) > len(ctx):
            return ctx, whole[len(ctx) :]
        return ctx, self.tokenize(continuation, False)

    async def score(self, context: str, continuation: str) -> Score:
        ctx, cont = self.split(context, continuation)
        # Each token's request needs only the tokens before it, never an answer: they
        # all go at once (the endpoint's bound applies) and the engine batches them.
        values = await asyncio.gather(
            *(self._forced(ctx + cont[:i], t) for i, t in enumerate(cont))
        )
        return Score(sum(v for v, _ in values), all(g for _, g in values))

    async def _forced(self, prompt: list[int], token: int) -> tuple[float, bool]:
        answer = await self.endpoint.post(
            "/completions",
            {
                "prompt": prompt,
                "max_tokens": 1,
                "temperature": 0.0,
                "logprobs": 1,
                "logit_bias": {str(token): 100},
                "seed": self.seed,
            },
        )
        lp = (answer.get("choices") or [{}])[0].get("logprobs") or {}
        values = lp.get("token_logprobs") or []
        if not values or values[0] is None:
            raise EndpointError(f"{self.endpoint.base_url}/completions returned no logprobs")
        value = float(values[0])
        top = (lp.get("top_logprobs") or [None])[0]
        return value, not (top and max(top.values()) > value + 1e-6)


@dataclass(frozen=True, slots=True)
class Pick:
    """A chat answer: the chosen index (-1 when none could be read) and the raw text."""

    index: int
    text: str


class ChatChooser:
    """Generate-then-extract over ``/v1/chat/completions`` with a letter-only schema."""

    def __init__(self, endpoint: Endpoint, *, seed: int = 1234, max_tokens: int = 32) -> None:
        self.endpoint = endpoint
        self.seed = seed
        self.max_tokens = max_tokens

    @staticmethod
    def messages(item: Item, examples: list[Item]) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for ex in examples:
            out.append({"role": "user", "content": _ask(ex)})
            out.append({"role": "assistant", "content": json.dumps({"answer": LETTERS[ex.answer]})})
        out.append({"role": "user", "content": _ask(item)})
        return out

    async def choose(self, item: Item, examples: list[Item]) -> Pick:
        letters = list(LETTERS[: len(item.choices)])
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {"answer": {"type": "string", "enum": letters}},
            "required": ["answer"],
            "additionalProperties": False,
        }
        answer = await self.endpoint.post(
            "/chat/completions",
            {
                "messages": self.messages(item, examples),
                "temperature": 0.0,
                "seed": self.seed,
                "max_tokens": self.max_tokens,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": schema, "strict": True},
                },
            },
        )
        message = (answer.get("choices") or [{}])[0].get("message") or {}
        text = message.get("content") or ""
        return Pick(extract_letter(text, letters), text)


def _ask(item: Item) -> str:
    return (
        f"{item.question}\n{lettered(item)}\n"
        'Answer with the letter of the right choice, as JSON: {"answer": "<letter>"}'
    )


_LONE_LETTER = re.compile(r"\b([A-Z])\b")


def extract_letter(text: str, letters: list[str]) -> int:
    """The index the answer names: JSON ``answer`` first, else the first lone letter.

    Exact match only: an answer naming no valid letter is -1 (wrong), never guessed.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("answer"), str):
        letter = value["answer"].strip()
        return letters.index(letter) if letter in letters else -1
    for match in _LONE_LETTER.finditer(text):
        if match.group(1) in letters:
            return letters.index(match.group(1))
    return -1
