"""response_format: JSON schemas become grammars, and outputs are validated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from luodi.chat import (
    ChatTemplate,
    json_object_grammar,
    json_schema_to_grammar,
    prepare_chat,
    response_format_grammar,
    response_format_schema,
    tool_choice_grammar,
    validate_json_output,
)
from luodi.errors import InvalidRequestError
from tests.chat.conftest import CLOCK_TOOL, WEATHER_TOOL
from tests.chat.gbnf import Grammar

NESTED = {
    "type": "object",
    "properties": {
        "customer": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
        },
        "vip": {"type": "boolean"},
    },
    "required": ["customer"],
}
ENUM = {
    "type": "object",
    "properties": {"risk": {"enum": ["low", "medium", "high"]}},
    "required": ["risk"],
}
ARRAY = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                "required": ["sku", "qty"],
            },
            "minItems": 1,
        }
    },
    "required": ["items"],
}
REFS = {
    "$defs": {"money": {"type": "object", "properties": {"amount": {"type": "number"}}}},
    "type": "object",
    "properties": {"balance": {"$ref": "#/$defs/money"}},
    "required": ["balance"],
}

SCHEMA_CASES = [
    (NESTED, {"customer": {"name": "张三", "age": 30}, "vip": True}, True),
    (NESTED, {"customer": {"name": "张三", "age": 30}}, True),
    (NESTED, {"customer": {"name": "张三"}}, False),
    (NESTED, {"customer": {"name": "张三", "age": "30"}}, False),
    (ENUM, {"risk": "high"}, True),
    (ENUM, {"risk": "extreme"}, False),
    (ARRAY, {"items": [{"sku": "A1", "qty": 2}, {"sku": "B", "qty": 1}]}, True),
    (ARRAY, {"items": []}, False),
    (ARRAY, {"items": [{"sku": "A1"}]}, False),
    (REFS, {"balance": {"amount": 12.5}}, True),
    (REFS, {"balance": {"amount": "12.5"}}, False),
]
SCHEMA_IDS = [
    "nested-full",
    "nested-optional-missing",
    "nested-required-missing",
    "nested-wrong-type",
    "enum-member",
    "enum-nonmember",
    "array-of-objects",
    "array-too-short",
    "array-item-missing-field",
    "ref-valid",
    "ref-wrong-type",
]


@pytest.mark.parametrize(("schema", "value", "valid"), SCHEMA_CASES, ids=SCHEMA_IDS)
def test_grammar_accepts_exactly_the_valid_json(
    schema: dict[str, Any], value: Any, valid: bool
) -> None:
    grammar = Grammar.parse(json_schema_to_grammar(schema))
    assert grammar.accepts(json.dumps(value, ensure_ascii=False)) is valid


@pytest.mark.parametrize(("schema", "value", "valid"), SCHEMA_CASES, ids=SCHEMA_IDS)
def test_validate_json_output_agrees(schema: dict[str, Any], value: Any, valid: bool) -> None:
    errors = validate_json_output(json.dumps(value, ensure_ascii=False), schema)
    assert (errors == []) is valid


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ('{"a": [1, {"b": null}], "c": "文字"}', True),
        ("{}", True),
        ("[1, 2]", False),
        ("42", False),
    ],
)
def test_json_object_grammar_accepts_any_object_only(text: str, accepted: bool) -> None:
    assert Grammar.parse(json_object_grammar()).accepts(text) is accepted


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("not json", "not valid JSON"), ('{"risk": "extreme"}', "risk: 'extreme' is not one of")],
)
def test_validation_errors_say_what_is_wrong(text: str, fragment: str) -> None:
    errors = validate_json_output(text, ENUM)
    assert len(errors) == 1 and fragment in errors[0]


@pytest.mark.parametrize(
    ("response_format", "schema"),
    [
        (None, None),
        ({"type": "text"}, None),
        ({"type": "json_object"}, {"type": "object"}),
        ({"type": "json_schema", "json_schema": {"name": "r", "schema": ENUM}}, ENUM),
    ],
)
def test_response_format_schema(response_format: Any, schema: Any) -> None:
    assert response_format_schema(response_format) == schema
    assert (response_format_grammar(response_format) is None) is (schema is None)


@pytest.mark.parametrize(
    ("response_format", "match"),
    [
        ({"type": "xml"}, "response_format.type"),
        ({"type": "json_schema", "json_schema": {"name": "r"}}, "schema is required"),
        ({"type": "json_schema", "json_schema": {"schema": {"type": 12}}}, "invalid JSON schema"),
        ({"type": "json_schema", "json_schema": {"schema": []}}, "must be an object"),
    ],
)
def test_bad_response_format_is_an_invalid_request(response_format: Any, match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        response_format_grammar(response_format)


def test_json_output_turns_qwen3_thinking_off_and_validates(qwen3: ChatTemplate) -> None:
    prepared = prepare_chat(
        qwen3,
        [{"role": "user", "content": "risk?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": ENUM}},
    )
    assert prepared.grammar is not None and not prepared.thinking
    assert prepared.prompt.endswith("<think>\n\n</think>\n\n")
    assert prepared.validate('{"risk": "low"}') == []
    assert prepared.validate('{"risk": "none"}')


def _default_model() -> Path | None:
    path = Path.home() / ".cache" / "luodi-tests" / "models" / "gemma-3-270m-q4_k_m.gguf"
    return path if path.exists() else None


@pytest.mark.skipif(_default_model() is None, reason="the default GGUF is not assembled")
def test_llama_cpp_parses_every_grammar_luodi_builds() -> None:
    """llama.cpp's own GBNF parser (vocabulary only, no weights run) takes each grammar."""
    import llama_cpp

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(_default_model()).encode(), params)
    assert model
    try:
        vocab = llama_cpp.llama_model_get_vocab(model)
        grammars = [json_schema_to_grammar(s) for s in (NESTED, ENUM, ARRAY, REFS)]
        grammars += [json_object_grammar()]
        grammars += [
            tool_choice_grammar([WEATHER_TOOL, CLOCK_TOOL], choice)
            for choice in ("required", {"type": "function", "function": {"name": "now"}})
        ]
        for grammar in grammars:
            assert grammar is not None
            sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
            assert sampler, grammar
            llama_cpp.llama_sampler_free(sampler)
    finally:
        llama_cpp.llama_model_free(model)
