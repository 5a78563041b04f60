"""Structured output on the real default model: every keyword holds when sampled hot."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from luodi.chat import (
    ChatTemplate,
    json_object_grammar,
    prepare_chat,
    response_format_grammar,
    validate_json_output,
)
from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.engine.llamacpp.grammar import GrammarVocab, TokenMask
from luodi.engine.types import FinishReason, GenerationRequest, SamplingParams
from luodi.errors import InvalidRequestError
from tests.chat.conftest import WEATHER_TOOL
from tests.chat.schema_cases import CASES, KeywordCase, case

pytestmark = pytest.mark.model

SAMPLES = 4


def _json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "r", "schema": schema, "strict": True}}


async def _sample(
    engine: LlamaCppEngine,
    question: str,
    response_format: dict[str, Any],
    params: SamplingParams,
) -> tuple[str, FinishReason | None]:
    prepared = prepare_chat(
        ChatTemplate.for_model(engine.template_metadata),
        [{"role": "user", "content": question}],
        response_format=response_format,
    )
    params.grammar = prepared.grammar
    request = GenerationRequest(engine.tokenize_chat(prepared.prompt), params)
    events = [e async for e in engine.generate(request)]
    return "".join(e.text for e in events), events[-1].finish_reason


def _hot(seed: int, max_tokens: int = 160) -> SamplingParams:
    return SamplingParams(temperature=1.0, seed=seed, max_tokens=max_tokens)


@pytest.mark.parametrize("keyword_case", CASES, ids=[c.keyword for c in CASES])
async def test_each_keyword_holds_in_every_output_sampled_at_temperature_1(
    engine: LlamaCppEngine, keyword_case: KeywordCase
) -> None:
    schema = keyword_case.schema
    question = "Reply with JSON for a customer record following this schema: " + json.dumps(
        schema, ensure_ascii=False
    )
    results = await asyncio.gather(
        *(_sample(engine, question, _json_schema(schema), _hot(seed)) for seed in range(SAMPLES))
    )
    for text, reason in results:
        assert reason is FinishReason.STOP, text
        assert validate_json_output(text, schema) == [], text


async def test_json_object_output_is_one_object_or_says_it_was_cut(
    engine: LlamaCppEngine,
) -> None:
    # Any object at all: the model may add key after key, so some answers run out of
    # max_tokens. Those that end are one object; those cut fail validation, saying so.
    question = "Give the name and age of a person as a JSON object."
    params = [SamplingParams(temperature=0.9, seed=s, max_tokens=256) for s in range(SAMPLES)]
    results = await asyncio.gather(
        *(_sample(engine, question, {"type": "json_object"}, p) for p in params)
    )
    for text, reason in results:
        if reason is FinishReason.STOP:
            assert isinstance(json.loads(text), dict), text
        else:
            assert reason is FinishReason.LENGTH
            assert validate_json_output(text, {"type": "object"}), text
    assert any(reason is FinishReason.STOP for _, reason in results)


async def test_greedy_output_follows_the_schema_where_the_model_would_not(
    engine: LlamaCppEngine,
) -> None:
    # The example: unconstrained, the model wrote "risk": 1000000000000000.
    schema = case("minimum/maximum").schema
    text, reason = await _sample(
        engine,
        "Rate the fraud risk of this transfer as a number of at least one million.",
        _json_schema(schema),
        SamplingParams(temperature=0.0, max_tokens=64),
    )
    assert reason is FinishReason.STOP
    assert validate_json_output(text, schema) == [], text


async def test_logit_bias_cannot_push_output_outside_the_schema(engine: LlamaCppEngine) -> None:
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": False,
    }
    bias = {tok: 50.0 for tok in engine.tokenize("maybe no", add_special=False)}
    text, reason = await _sample(
        engine,
        "Is the sky blue?",
        _json_schema(schema),
        SamplingParams(temperature=0.0, max_tokens=32, logit_bias=bias),
    )
    assert reason is FinishReason.STOP
    assert validate_json_output(text, schema) == [], text


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(temperature=0.0, max_tokens=96, repetition_penalty=1.3),
        SamplingParams(temperature=0.9, top_k=40, top_p=0.95, min_p=0.05, seed=7, max_tokens=96),
    ],
    ids=["greedy-with-penalty", "truncated-sampling"],
)
async def test_sampler_chain_runs_on_the_allowed_tokens_only(
    engine: LlamaCppEngine, params: SamplingParams
) -> None:
    schema = case("exclusiveMinimum/exclusiveMaximum").schema  # most next tokens refused
    text, reason = await _sample(engine, "Give a score as JSON.", _json_schema(schema), params)
    assert reason is FinishReason.STOP
    assert validate_json_output(text, schema) == [], text


async def test_output_cut_by_max_tokens_fails_validation(engine: LlamaCppEngine) -> None:
    schema = case("required").schema
    text, reason = await _sample(
        engine, "A customer as JSON.", _json_schema(schema), _hot(1, max_tokens=3)
    )
    assert reason is FinishReason.LENGTH
    assert validate_json_output(text, schema)


async def test_forced_tool_call_grammar_is_enforced_by_the_same_masks(
    engine: LlamaCppEngine,
) -> None:
    prepared = prepare_chat(
        ChatTemplate.for_model(engine.template_metadata),
        [{"role": "user", "content": "What is the weather in Hangzhou?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    params = _hot(3, max_tokens=96)
    params.grammar = prepared.grammar  # Lark, the arguments' schema inlined as %json
    request = GenerationRequest(engine.tokenize_chat(prepared.prompt), params)
    text = "".join([e.text async for e in engine.generate(request)])
    body = text.removeprefix("<tool_call>\n").split("\n</tool_call>")[0]
    call = json.loads(body)
    assert call["name"] == "get_weather" and isinstance(call["arguments"]["city"], str)


async def test_ignore_eos_with_a_schema_is_refused(engine: LlamaCppEngine) -> None:
    grammar = response_format_grammar({"type": "json_object"})
    params = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True, grammar=grammar)
    with pytest.raises(InvalidRequestError, match="ignore_eos"):
        async for _ in engine.generate(GenerationRequest(engine.tokenize("{"), params)):
            pass


@pytest.fixture(scope="module")
def vocab(engine: LlamaCppEngine) -> GrammarVocab:
    return GrammarVocab(engine.model)


def test_mask_lists_exactly_the_tokens_it_allows(
    engine: LlamaCppEngine, vocab: GrammarVocab
) -> None:
    mask = TokenMask(vocab, json_object_grammar())
    # After "{": a few tokens (the sparse path); inside a string: most of them (dense).
    for prefix in ("{", '"na'):
        for token in engine.tokenize(prefix, add_special=False):
            assert mask.try_accept(token)
        mask.compute()
        expected = [t for t in range(vocab.n_vocab) if mask.allows(t)]
        assert mask.allowed().tolist() == expected
    assert len(expected) > 100_000
    assert not mask.try_accept(engine.model.eos_token)  # the object is not complete
