"""response_format: JSON schemas become llguidance grammars, and outputs are validated."""

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
from tests.chat.byte_grammar import accepts
from tests.chat.conftest import CLOCK_TOOL, WEATHER_TOOL
from tests.chat.schema_cases import CASES, KeywordCase
from tests.conftest import default_gguf

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
    assert accepts(json_schema_to_grammar(schema), json.dumps(value, ensure_ascii=False)) is valid


def _examples(valid: bool) -> list[tuple[KeywordCase, Any]]:
    return [(c, v) for c in CASES for v in (c.valid if valid else c.invalid)]


def _ids(examples: list[tuple[KeywordCase, Any]]) -> list[str]:
    return [f"{c.keyword}:{json.dumps(v, ensure_ascii=False)}" for c, v in examples]


@pytest.mark.parametrize(("case", "value"), _examples(True), ids=_ids(_examples(True)))
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
def test_each_keyword_admits_its_valid_values(case: KeywordCase, value: Any, strict: bool) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert validate_json_output(text, case.schema) == []
    assert accepts(json_schema_to_grammar(case.schema, strict=strict), text)


@pytest.mark.parametrize(("case", "value"), _examples(False), ids=_ids(_examples(False)))
def test_each_keyword_is_enforced_while_sampling(case: KeywordCase, value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False)
    assert validate_json_output(text, case.schema)  # the validator refuses it
    assert not accepts(json_schema_to_grammar(case.schema, strict=True), text)


def test_integer_bounds_are_enforced_where_they_used_to_be_ignored() -> None:
    schema = {
        "type": "object",
        "properties": {"risk": {"type": "integer", "minimum": 0, "maximum": 100}},
    }
    grammar = json_schema_to_grammar(schema)
    assert accepts(grammar, '{"risk": 100}')
    assert not accepts(grammar, '{"risk": 1000000000000000}')


def test_objects_listing_properties_get_no_others_while_sampling() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    extra = '{"city": "上海", "country": "CN"}'
    assert not accepts(json_schema_to_grammar(schema), extra)
    assert validate_json_output(extra, schema) == []  # what was asked still admits it


@pytest.mark.parametrize(
    ("schema", "text"),
    [
        ({"type": "object"}, '{"any": 1}'),
        (
            {"properties": {"a": {}}, "additionalProperties": {"type": "integer"}},
            '{"a": 1, "b": 2}',
        ),
        ({"properties": {"a": {}}, "patternProperties": {"^x": {}}}, '{"a": 1, "x1": 2}'),
        ({"allOf": [{"properties": {"a": {}}}, {"properties": {"b": {}}}]}, '{"a": 1, "b": 2}'),
    ],
    ids=["no-properties", "additionalProperties-schema", "patternProperties", "allOf-branches"],
)
def test_objects_that_say_how_to_take_more_properties_stay_open(
    schema: dict[str, Any], text: str
) -> None:
    assert accepts(json_schema_to_grammar(schema), text)


def test_whitespace_between_tokens_is_bounded() -> None:
    grammar = json_object_grammar()
    assert accepts(grammar, '{\n  "a": 1,\n  "b": [1, 2]\n}')
    assert not accepts(grammar, "{" + "\n" * 3 + '"a": 1}')
    assert not accepts(grammar, ' {"a": 1}')


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "uniqueItems"),
        ({"type": "array", "contains": {"type": "integer"}}, "contains"),
        ({"not": {"type": "string"}}, "not"),
        ({"type": "object", "propertyNames": {"pattern": "^a"}}, "propertyNames"),
        ({"if": {"type": "string"}, "then": {"minLength": 2}}, "if"),
        ({"type": "object", "dependentRequired": {"a": ["b"]}}, "dependentRequired"),
        ({"type": "string", "format": "iban"}, "format"),
        ({"oneOf": [{"type": "string"}, {"type": "string", "minLength": 2}]}, "oneOf"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_strict_schema_with_an_unenforceable_keyword_is_refused_naming_it(
    schema: dict[str, Any], keyword: str
) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "r", "schema": schema, "strict": True},
    }
    with pytest.raises(InvalidRequestError, match=keyword) as info:
        response_format_grammar(response_format)
    assert info.value.param == "response_format.json_schema.schema"
    assert info.value.status_code == 400


@pytest.mark.parametrize("strict", [False, None])
def test_without_strict_an_unenforceable_keyword_is_left_to_validation(strict: Any) -> None:
    schema = {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}
    spec: dict[str, Any] = {"name": "r", "schema": schema}
    if strict is not None:
        spec["strict"] = strict
    grammar = response_format_grammar({"type": "json_schema", "json_schema": spec})
    assert grammar is not None and accepts(grammar, "[1, 1]")  # the rest is enforced
    assert not accepts(grammar, '["a"]')
    assert validate_json_output("[1, 1]", schema)  # and the validator says so


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"type": "string", "pattern": "(?=a)b"}, "pattern"),
        ({"$ref": "#/$defs/missing"}, "$ref"),
        ({"$ref": "https://example.com/schema.json"}, "$ref"),
    ],
)
def test_a_schema_that_cannot_be_enforced_at_all_is_refused_even_without_strict(
    schema: dict[str, Any], keyword: str
) -> None:
    with pytest.raises(InvalidRequestError, match=keyword.replace("$", r"\$")):
        json_schema_to_grammar(schema)


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
    assert accepts(json_object_grammar(), text) is accepted


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
    path = default_gguf()
    return path if path.exists() else None


@pytest.mark.skipif(_default_model() is None, reason="the default GGUF is not assembled")
@pytest.mark.filterwarnings("ignore:llama_token_get_attr is deprecated")  # llguidance's helper
def test_llguidance_takes_every_grammar_luodi_builds_on_the_model_vocabulary() -> None:
    """Each grammar compiles against the real 262k-token vocabulary (no weights run)."""
    import llama_cpp
    from llguidance import LLMatcher
    from llguidance.llamacpp import lltokenizer_from_vocab

    from luodi.engine.llamacpp.grammar import llguidance_grammar

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(_default_model()).encode(), params)
    assert model
    try:
        tokenizer = lltokenizer_from_vocab(llama_cpp.llama_model_get_vocab(model))
        grammars = [json_schema_to_grammar(s) for s in (NESTED, ENUM, ARRAY, REFS)]
        grammars += [json_schema_to_grammar(c.schema, strict=True) for c in CASES]
        grammars += [json_object_grammar()]
        grammars += [
            llguidance_grammar(tool_choice_grammar([WEATHER_TOOL, CLOCK_TOOL], choice) or "")
            for choice in ("required", {"type": "function", "function": {"name": "now"}})
        ]
        for grammar in grammars:
            matcher = LLMatcher(tokenizer, grammar, log_level=0)
            assert not matcher.is_error(), (matcher.get_error(), grammar)
    finally:
        llama_cpp.llama_model_free(model)


@pytest.mark.parametrize(("value", "ok"), [("0.59", True), ("1.1", True), ("0.595", False)])
def test_multiple_of_is_checked_in_decimal_not_binary_floats(value: str, ok: bool) -> None:
    schema = {"type": "object", "properties": {"p": {"type": "number", "multipleOf": 0.01}}}
    assert (validate_json_output(f'{{"p": {value}}}', schema) == []) is ok


@pytest.mark.parametrize(
    ("day", "valid"),
    [
        ("2024-02-29", True),
        ("2000-02-29", True),
        ("0000-01-01", True),  # RFC 3339 has a year 0 and the grammar samples it
        ("0000-02-29", True),
        ("2023-02-29", False),
        ("1900-02-29", False),
        ("2024-04-31", False),
        ("2024-13-01", False),
    ],
)
def test_a_date_is_sampled_and_checked_as_rfc_3339_reads_it(day: str, valid: bool) -> None:
    # jsonschema's own check (date.fromisoformat) refused year 0000, which the sampler
    # wrote; llguidance's own date format samples 02-29 in any year.
    schema = {"type": "object", "properties": {"day": {"type": "string", "format": "date"}}}
    text = json.dumps({"day": day})
    assert (validate_json_output(text, schema) == []) is valid
    assert accepts(json_schema_to_grammar(schema), text) is valid
    assert not accepts(json_schema_to_grammar(schema), json.dumps({"day": f"x{day}"}))
