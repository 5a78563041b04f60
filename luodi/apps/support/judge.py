"""The model's say, when the nearest examples are not confident: few-shot, schema-bound.

The prompt describes every intent of the assistant (description and two examples), the
same for every question: it is a stable prefix the engine's prefix cache keeps, so only
the question is computed per call (``SupportService.warm`` computes it ahead). The answer
is constrained by a JSON schema whose ``intent`` is an enum of the candidate intents (the
nearest examples' best) and ``out_of_scope``, so the model can only name one of them (the
engine turns the schema into a grammar). Its confidence is the probability the model
gave the tokens of the name it chose (greedy decoding, token log-probabilities).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from luodi.api.pipeline.route import ChatRenderer
from luodi.apps.support.assistant import OUT_OF_SCOPE, Assistant, Intent
from luodi.engine.base import Engine
from luodi.engine.pool import OnDemand
from luodi.engine.types import ChatPrompt, PromptRequest, SamplingParams
from luodi.errors import EngineError

__all__ = ["IntentJudge", "generate_text", "judge_messages"]

_MAX_TOKENS = 32


def judge_messages(assistant: Assistant, text: str) -> list[dict[str, str]]:
    """The few-shot prompt: every intent with its description and two examples."""
    lines = [
        "Classify the customer's message for an online shop's service desk into exactly one "
        "intent. 把顾客的话归入下列意图之一；都不相符时选 out_of_scope。",
        "",
    ]
    for intent in assistant.intents:
        shots = " | ".join(intent.examples[:2])
        lines.append(f"- {intent.name}: {intent.description} (e.g. {shots})")
    oos = " | ".join(assistant.out_of_scope.examples[:2]) or "weather, jokes, general knowledge"
    lines.append(f"- {OUT_OF_SCOPE}: anything else, not about shopping here (e.g. {oos})")
    return [
        {"role": "system", "content": "\n".join(lines)},
        {"role": "user", "content": text},
    ]


async def generate_text(
    engine: Engine,
    model: str,
    messages: list[dict[str, str]],
    params: SamplingParams,
    options: dict[str, Any] | None = None,
    pin: str | None = None,
) -> tuple[str, float]:
    """Run one chat on ``engine`` to the end: its text, and the summed log-probability of
    an ``intent`` value's tokens in it (0 when it has none). ``pin``: keep the prompt
    pinned in the engine's prefix cache under that key (``GenerationRequest.pin_prefix``)."""
    if isinstance(engine, OnDemand):  # a pooled model unloaded while idle
        await engine.ensure_loaded()
    options = options or {}
    renderer = ChatRenderer(messages, options)
    request = PromptRequest(
        params,
        chat=ChatPrompt(messages, options, renderer),
        model=model,
        default_max_tokens=params.max_tokens,
    )
    planned = engine.prepare(request)[0]
    planned.pin_prefix = pin
    text, tokens, logprob = "", "", 0.0
    async for event in engine.generate(planned):
        text += event.text
        for lp in event.logprobs:
            if _in_value(tokens):
                logprob += lp.logprob
            tokens += lp.token
        if event.error:
            raise EngineError(event.error)
    return text, logprob


def _in_value(prefix: str) -> bool:
    """Whether the next token of a ``{"intent": "..."}`` answer is inside the name.

    The grammar forces the braces, the key and the quotes: the model's (unconstrained)
    probability of those says nothing, so only the name's tokens are counted.
    """
    at = prefix.find('"intent"')
    return at >= 0 and prefix[at + len('"intent"') :].count('"') == 1


class IntentJudge:
    """Asks a served model to pick the intent among candidates (or out_of_scope)."""

    def __init__(self, engine: Engine, model: str) -> None:
        self._engine = engine
        self._model = model

    async def choose(
        self,
        assistant: Assistant,
        candidates: Sequence[Intent],
        text: str,
        *,
        pin: str | None = None,
    ) -> tuple[str, float]:
        """The chosen intent's name and the probability the model gave it; ``pin`` keeps
        the prompt (its head: the intent block) in the engine's prefix cache."""
        names = [i.name for i in candidates] + [OUT_OF_SCOPE]
        schema = {
            "type": "object",
            "properties": {"intent": {"type": "string", "enum": names}},
            "required": ["intent"],
            "additionalProperties": False,
        }
        options = {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "intent", "schema": schema, "strict": True},
            }
        }
        messages = judge_messages(assistant, text)
        text_out, logprob = await generate_text(
            self._engine,
            self._model,
            messages,
            SamplingParams(temperature=0.0, max_tokens=_MAX_TOKENS, logprobs=1),
            options,
            pin,
        )
        try:
            chosen = json.loads(text_out)["intent"]
        except (ValueError, KeyError, TypeError):
            return OUT_OF_SCOPE, 0.0
        if chosen not in names:
            return OUT_OF_SCOPE, 0.0
        return str(chosen), math.exp(max(logprob, -50.0))
