"""Structured output: ``response_format`` JSON schemas, enforced while sampling, then checked.

``json_object`` and ``json_schema`` are compiled by :func:`json_schema_to_grammar` into an
llguidance grammar, whose token masks let the model write only text that can still
become JSON valid for the schema: numeric bounds, string lengths and patterns, array
sizes, ``enum``/``const``, ``additionalProperties``, ``$ref``/``$defs``,
``anyOf``/``oneOf``/``allOf`` and more (docs/structured-output.md lists them). A keyword
llguidance cannot enforce is refused with a 400 naming it when the request sets
``strict: true``; without ``strict`` it is left to :func:`validate_json_output`, which
checks every finished output against the whole schema (an output cut by ``max_tokens``
fails it too).

:func:`json_schema_lark` embeds a schema in a larger llguidance (Lark) grammar, with the
same options and checks: the tool-call grammars of ``luodi.chat.tool_choice``.
"""

from __future__ import annotations

import calendar
import functools
import json
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import jsonschema
from llguidance import LLMatcher

from luodi.errors import InvalidRequestError

__all__ = [
    "JSON_OBJECT_SCHEMA",
    "check_schema",
    "closed_objects",
    "json_object_grammar",
    "json_schema_lark",
    "json_schema_to_grammar",
    "response_format_grammar",
    "response_format_schema",
    "response_format_strict",
    "validate_json_output",
]

JSON_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}
"""What ``response_format: {"type": "json_object"}`` promises: some JSON object."""


def check_schema(schema: Any, *, param: str = "response_format.json_schema.schema") -> None:
    """Reject a schema that is not a valid JSON Schema object.

    Raises:
        InvalidRequestError: naming ``param`` and the first problem.
    """
    if not isinstance(schema, Mapping):
        raise InvalidRequestError("the JSON schema must be an object", param=param)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidRequestError(f"invalid JSON schema: {exc.message}", param=param) from exc


_WHITESPACE = r"(?: |\n{1,2}[ \t]{0,20})"
"""JSON whitespace the model may write between tokens: a space, or a new line and an
indent, as llama.cpp's converter allows. Bounded, so that a model cannot fill its
``max_tokens`` with blank lines (llguidance's default allows any run of whitespace)."""

# What llguidance says when it cannot enforce part of a schema -> the keyword to name.
_REFUSALS: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (re.compile(r"Unimplemented keys: (\[.*?\])"), None),  # the keys, as a JSON list
    (re.compile(r"Unknown format"), "format"),
    (re.compile(r"oneOf"), "oneOf"),
    (re.compile(r"allOf|intersection"), "allOf"),
    (re.compile(r"regex|look-?around|look-ahead|look-behind"), "pattern"),
    (re.compile(r"Pointer|Resource|\$ref|retriev"), "$ref"),
)


def json_schema_to_grammar(
    schema: Mapping[str, Any],
    *,
    strict: bool = False,
    param: str = "response_format.json_schema.schema",
) -> str:
    """An llguidance grammar accepting exactly the JSON text the schema allows.

    Properties are written in the schema's order, an object schema that lists
    ``properties`` admits no others unless it says so (:func:`closed_objects`),
    whitespace between tokens is bounded (a space, or a new line and an indent), and no
    text may precede or follow the value.

    Args:
        schema: A JSON Schema (Draft 2020-12; local ``$ref`` only).
        strict: Refuse a schema using a keyword llguidance cannot enforce (and a
            ``oneOf`` whose branches may overlap), instead of enforcing the rest.
        param: The request field to name in errors.

    Raises:
        InvalidRequestError: the schema is invalid, or cannot be enforced; with
            ``strict``, uses a keyword that cannot be; the message names the keyword.
    """
    check_schema(schema, param=param)
    schema = closed_objects(schema)
    grammar, problem = _compile(schema, lenient=not strict)
    if problem is None:
        return grammar
    message = _refusal(problem)
    if strict and _compile(schema, lenient=True)[1] is None:
        message += "; without strict it is enforced in part and checked after generation"
    raise InvalidRequestError(message, param=param)


def json_schema_lark(
    schema: Mapping[str, Any], *, strict: bool = False, param: str = "tools"
) -> str:
    """``%json {...}``: the schema as a rule of a larger llguidance Lark grammar.

    The same whitespace and ``strict`` rules as :func:`json_schema_to_grammar` apply,
    carried in the schema's ``x-guidance`` options.

    Raises:
        InvalidRequestError: as :func:`json_schema_to_grammar`.
    """
    json_schema_to_grammar(schema, strict=strict, param=param)  # refuse it here, by keyword
    own = schema.get("x-guidance")
    options = {
        "whitespace_pattern": _WHITESPACE,
        **(own if isinstance(own, Mapping) else {}),
        "lenient": not strict,
    }
    closed = closed_objects(schema)
    return "%json " + json.dumps({**closed, "x-guidance": options}, ensure_ascii=False)


# Keywords whose value is one schema, a list of schemas, or a map of names to schemas.
_ONE = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then",
        "else", "unevaluatedItems", "unevaluatedProperties", "additionalItems")  # fmt: skip
_LIST = ("anyOf", "oneOf", "allOf", "prefixItems", "items")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_OPEN = ("additionalProperties", "patternProperties", "unevaluatedProperties", "allOf", "$ref")


_LEAP_AWARE_DATE = (
    r"^(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    r"|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)$"
)
"""RFC 3339's full-date (JSON Schema's ``date``) with Gregorian leap years, anchored."""


def closed_objects(schema: Any, *, in_all_of: bool = False) -> Any:
    """The schema as sampled: objects listing ``properties`` get no others unless they say so.

    JSON Schema admits any other property where ``additionalProperties`` is absent, and a
    small model given that room fills it with invented keys until ``max_tokens`` runs
    out. llama.cpp's converter and XGrammar's strict mode (vLLM's default) close such
    objects while sampling; luodi does the same, and validates the answer against the
    schema as given. Left open: objects that say ``additionalProperties``,
    ``patternProperties`` or ``unevaluatedProperties``, and those combined with others
    (``allOf``, ``$ref``, or a branch of an ``allOf``), whose properties come from several
    places. A ``date`` string is sampled by a pattern that knows leap years.
    """
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _MAP and isinstance(value, Mapping):
            out[key] = {name: closed_objects(sub) for name, sub in value.items()}
        elif key in _LIST and isinstance(value, list):
            out[key] = [closed_objects(sub, in_all_of=key == "allOf") for sub in value]
        elif key in _ONE:
            out[key] = closed_objects(value)
        else:
            out[key] = value
    if "properties" in out and not in_all_of and not any(k in out for k in _OPEN):
        out["additionalProperties"] = False
    if out.get("format") == "date" and "pattern" not in out:
        # llguidance's date admits 02-29 in every year; this pattern knows leap years.
        del out["format"]
        out["pattern"] = _LEAP_AWARE_DATE
    return out


def _compile(schema: Mapping[str, Any], *, lenient: bool) -> tuple[str, str | None]:
    """llguidance's grammar for ``schema`` and, when it refuses it, why."""
    try:
        grammar = LLMatcher.grammar_from_json_schema(
            json.dumps(schema),
            defaults={"whitespace_pattern": _WHITESPACE},
            # After the schema's own "x-guidance" options, so that strict means strict.
            overrides={"lenient": lenient},
        )
    except ValueError as exc:
        return "", str(exc) or "invalid JSON schema"
    failed, messages = LLMatcher.validate_grammar_with_warnings(grammar)
    if failed:
        return grammar, (messages[0] if messages else "") or "unknown reason"
    return grammar, None


def _refusal(problem: str) -> str:
    """The 400 message for a schema llguidance refused, naming the keyword when known."""
    detail = problem.strip().splitlines()[0]
    for pattern, keyword in _REFUSALS:
        found = pattern.search(problem)
        if found is not None:
            named = ", ".join(json.loads(found.group(1))) if keyword is None else keyword
            return (
                f"this JSON schema uses {named}, which cannot be enforced while sampling ({detail})"
            )
    return f"this JSON schema cannot be enforced while sampling: {detail}"


def json_object_grammar() -> str:
    """The grammar for ``json_object``: any JSON object."""
    return json_schema_to_grammar(JSON_OBJECT_SCHEMA, param="response_format")


def response_format_schema(response_format: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The schema an OpenAI ``response_format`` promises, or ``None`` for plain text.

    Raises:
        InvalidRequestError: an unknown type, or ``json_schema`` without a schema.
    """
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return dict(JSON_OBJECT_SCHEMA)
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if schema is None:
            raise InvalidRequestError(
                "response_format.json_schema.schema is required",
                param="response_format.json_schema",
            )
        check_schema(schema)
        return dict(schema)
    raise InvalidRequestError(
        f"response_format.type must be text, json_object or json_schema, got {kind!r}",
        param="response_format.type",
    )


def response_format_strict(response_format: Mapping[str, Any] | None) -> bool:
    """Whether ``response_format`` asks for ``json_schema`` with ``strict: true``."""
    spec = (response_format or {}).get("json_schema")
    return isinstance(spec, Mapping) and spec.get("strict") is True


def response_format_grammar(response_format: Mapping[str, Any] | None) -> str | None:
    """The llguidance grammar enforcing an OpenAI ``response_format``; ``None`` for text.

    Raises:
        InvalidRequestError: as :func:`response_format_schema` and
            :func:`json_schema_to_grammar`.
    """
    schema = response_format_schema(response_format)
    if schema is None:
        return None
    if response_format and response_format.get("type") == "json_object":
        return json_object_grammar()
    return json_schema_to_grammar(schema, strict=response_format_strict(response_format))


def validate_json_output(text: str, schema: Mapping[str, Any]) -> list[str]:
    """Check a model's output against a schema.

    Returns:
        Human-readable problems, empty when ``text`` is JSON valid for ``schema``.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return [f"not valid JSON: {exc}"]
    base = jsonschema.validators.validator_for(schema)
    # multipleOf in decimal: 0.59 is a multiple of 0.01, though 0.59 / 0.01 in binary
    # floating point is 58.99999999999999 and jsonschema's own check says it is not.
    cls = jsonschema.validators.extend(base, {"multipleOf": _multiple_of})
    # Formats too: sampling enforces date, time, email, uuid... (jsonschema skips a format
    # it has no checker for, e.g. date-time without rfc3339-validator installed).
    validator = cls(schema, format_checker=_format_checker(base))
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]


_FULL_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)


def _rfc3339_date(instance: object) -> bool:
    """RFC 3339's full-date, as JSON Schema's ``date`` format and llguidance define it.

    Year 0000 is one (the grammar samples it); ``date.fromisoformat``, jsonschema's own
    check, refuses it because Python's dates start at year 1.
    """
    if not isinstance(instance, str):
        return True
    found = _FULL_DATE.fullmatch(instance)
    if found is None:
        return False
    year, month, day = (int(g) for g in found.groups())
    # Year 0 is a leap year in the proleptic Gregorian calendar, as 2000 is.
    return 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year or 2000, month)[1]


@functools.cache
def _format_checker(validator: type[Any]) -> jsonschema.FormatChecker:
    """The draft's format checker, with ``date`` checked as RFC 3339 reads it."""
    checker = jsonschema.FormatChecker()
    checker.checkers = dict(validator.FORMAT_CHECKER.checkers)
    checker.checks("date")(_rfc3339_date)
    return checker


def _multiple_of(
    validator: Any, divisor: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    """``multipleOf`` checked on the numbers as written (decimal), not as binary floats."""
    if not validator.is_type(instance, "number") or isinstance(divisor, bool):
        return
    try:
        remainder = Decimal(str(instance)) % Decimal(str(divisor))
    except (InvalidOperation, ValueError):
        remainder = None
    if remainder is None or remainder != 0:
        yield jsonschema.ValidationError(f"{instance!r} is not a multiple of {divisor}")
