"""One JSON schema per keyword structured output enforces, with values it must take or refuse.

Shared by the grammar tests (no model: the grammar over bytes) and the sampling tests
(the default model at a high temperature: every output must validate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class KeywordCase:
    """A schema exercising ``keyword``; ``valid`` values it admits, ``invalid`` ones not."""

    keyword: str
    schema: dict[str, Any]
    valid: list[Any] = field(default_factory=list)
    invalid: list[Any] = field(default_factory=list)


def _record(prop: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An object with the one required property ``prop`` and nothing else."""
    return {
        "type": "object",
        "properties": {prop: schema},
        "required": [prop],
        "additionalProperties": False,
        **extra,
    }


SHORT = {"type": "string", "maxLength": 24}

CASES = [
    KeywordCase(
        "minimum/maximum",
        _record("risk", {"type": "integer", "minimum": 0, "maximum": 100}),
        [{"risk": 0}, {"risk": 100}, {"risk": 42}],
        [{"risk": 101}, {"risk": -1}, {"risk": 1000000000000000}, {"risk": 4.5}],
    ),
    KeywordCase(
        "exclusiveMinimum/exclusiveMaximum",
        # multipleOf bounds the fraction: a number may otherwise take digits without end.
        _record(
            "score",
            {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "multipleOf": 0.01},
        ),
        [{"score": 0.5}, {"score": 0.01}],
        [{"score": 0}, {"score": 1}, {"score": 1.5}, {"score": -0.2}, {"score": 0.123}],
    ),
    KeywordCase(
        "multipleOf",
        _record("step", {"type": "integer", "multipleOf": 5, "minimum": 0, "maximum": 50}),
        [{"step": 0}, {"step": 35}],
        [{"step": 7}, {"step": 55}],
    ),
    KeywordCase(
        "minItems/maxItems",
        _record("tags", {"type": "array", "items": SHORT, "minItems": 2, "maxItems": 3}),
        [{"tags": ["a", "b"]}, {"tags": ["a", "b", "c"]}],
        [{"tags": ["a"]}, {"tags": []}, {"tags": ["a", "b", "c", "d"]}],
    ),
    KeywordCase(
        "minLength/maxLength",
        _record("code", {"type": "string", "minLength": 2, "maxLength": 5}),
        [{"code": "ab"}, {"code": "文字文字文"}],
        [{"code": "a"}, {"code": "abcdef"}],
    ),
    KeywordCase(
        "pattern",
        _record("order", {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"}),
        [{"order": "ABC-1234"}],
        [{"order": "abc-1234"}, {"order": "ABC-12345"}, {"order": "ABC1234"}],
    ),
    KeywordCase(
        "enum",
        _record("level", {"enum": ["low", "medium", "high"]}),
        [{"level": "low"}, {"level": "high"}],
        [{"level": "extreme"}, {"level": "Low"}],
    ),
    KeywordCase(
        "const",
        {
            "type": "object",
            "properties": {"version": {"const": "v1"}, "name": SHORT},
            "required": ["version", "name"],
            "additionalProperties": False,
        },
        [{"version": "v1", "name": "x"}],
        [{"version": "v2", "name": "x"}],
    ),
    KeywordCase(
        "additionalProperties",
        {
            "type": "object",
            "properties": {"city": SHORT, "zip": {"type": "string", "pattern": "^[0-9]{6}$"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        [{"city": "上海"}, {"city": "北京", "zip": "100000"}],
        [{"city": "上海", "country": "CN"}],
    ),
    KeywordCase(
        "required",
        {
            "type": "object",
            "properties": {"name": SHORT, "age": {"type": "integer", "minimum": 0, "maximum": 150}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
        [{"name": "张三", "age": 30}],
        [{"name": "张三"}, {"age": 30}],
    ),
    KeywordCase(
        "$ref/$defs",
        {
            "$defs": {
                "money": {
                    "type": "object",
                    "properties": {
                        "amount": {"type": "integer", "minimum": 0, "maximum": 1000000},
                        "currency": {"enum": ["CNY", "USD"]},
                    },
                    "required": ["amount", "currency"],
                    "additionalProperties": False,
                }
            },
            **_record("balance", {"$ref": "#/$defs/money"}),
        },
        [{"balance": {"amount": 12, "currency": "CNY"}}],
        [{"balance": {"amount": "12", "currency": "CNY"}}, {"balance": {"amount": 12}}],
    ),
    KeywordCase(
        "anyOf",
        _record(
            "contact",
            {
                "anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": 999},
                    SHORT | {"maxLength": 3},
                ]
            },
        ),
        [{"contact": 5}, {"contact": "abc"}],
        [{"contact": "abcd"}, {"contact": True}, {"contact": 1000}],
    ),
    KeywordCase(
        "oneOf",
        _record(
            "payment",
            {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {
                            "kind": {"const": "card"},
                            "last4": {"type": "string", "pattern": "^[0-9]{4}$"},
                        },
                        "required": ["kind", "last4"],
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "properties": {"kind": {"const": "cash"}},
                        "required": ["kind"],
                        "additionalProperties": False,
                    },
                ]
            },
        ),
        [{"payment": {"kind": "card", "last4": "1234"}}, {"payment": {"kind": "cash"}}],
        [{"payment": {"kind": "card"}}, {"payment": {"kind": "cheque"}}],
    ),
    KeywordCase(
        "allOf",
        _record("n", {"allOf": [{"type": "integer", "minimum": 1}, {"maximum": 3}]}),
        [{"n": 1}, {"n": 3}],
        [{"n": 0}, {"n": 4}],
    ),
    KeywordCase(
        "type (list, null)",
        _record("note", {"type": ["string", "null"], "maxLength": 10}),
        [{"note": None}, {"note": "ok"}],
        [{"note": 3}, {"note": "much too long"}],
    ),
    KeywordCase(
        "prefixItems",
        _record(
            "point",
            {
                "type": "array",
                "prefixItems": [
                    {"type": "integer", "minimum": -90, "maximum": 90},
                    {"type": "integer", "minimum": -180, "maximum": 180},
                ],
                "items": False,
            },
        ),
        [{"point": [31, 121]}, {"point": [31]}],
        [{"point": [91, 0]}, {"point": [1, 2, 3]}],
    ),
    KeywordCase(
        "format",
        _record("day", {"type": "string", "format": "date"}),
        [{"day": "2024-02-29"}],
        [{"day": "yesterday"}, {"day": "2024-13-01"}],
    ),
]


def case(keyword: str) -> KeywordCase:
    """The case for ``keyword``."""
    return next(c for c in CASES if c.keyword == keyword)
