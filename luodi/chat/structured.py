"""Structured output: JSON schemas compiled to GBNF for llama.cpp's grammar sampler.

``response_format`` ``json_object`` and ``json_schema`` are enforced while
sampling, so the output is valid by construction; :func:`validate_json_output`
checks it afterwards (and checks upstream engines, which enforce it their own
way). The conversion is llama.cpp's own converter, as shipped in llama-cpp-python.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema
from llama_cpp.llama_grammar import SchemaConverter

from luodi.errors import InvalidRequestError

__all__ = [
    "JSON_OBJECT_SCHEMA",
    "SchemaGrammar",
    "check_schema",
    "json_object_grammar",
    "json_schema_to_grammar",
    "response_format_grammar",
    "response_format_schema",
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


class SchemaGrammar:
    """Builds one GBNF grammar from one or more JSON schemas, as named rules.

    Wraps llama.cpp's ``SchemaConverter``, whose rules share helper rules (``space``,
    ``string``...). Add schemas with :meth:`add`, then give the root rule to
    :meth:`grammar`; a schema added under the empty name is the entry rule ``root`` itself.

    Args:
        prop_order: Properties to emit first, in this order (e.g. ``name`` before
            ``arguments``); others follow in schema order.
    """

    def __init__(self, prop_order: tuple[str, ...] = ()) -> None:
        self._converter = SchemaConverter(  # type: ignore[no-untyped-call]
            prop_order={name: i for i, name in enumerate(prop_order)},
            allow_fetch=False,  # never fetch a remote $ref
            dotall=False,
            raw_pattern=False,
        )

    def add(self, schema: Mapping[str, Any], name: str, *, param: str) -> str:
        """Convert ``schema`` into a rule named ``name``; return the rule name to use.

        Raises:
            InvalidRequestError: the schema uses something the converter cannot express.
        """
        check_schema(schema, param=param)
        try:
            # resolve_refs mutates its argument: give it a private copy.
            resolved = self._converter.resolve_refs(json.loads(json.dumps(schema)), "request")
            return str(self._converter.visit(resolved, name))  # type: ignore[no-untyped-call]
        except (ValueError, KeyError, TypeError, AssertionError, NotImplementedError) as exc:
            raise InvalidRequestError(
                f"this JSON schema cannot be enforced: {exc}", param=param
            ) from exc

    def grammar(self, root: str | None = None) -> str:
        """The whole grammar.

        Args:
            root: The GBNF expression of the entry rule ``root``; ``None`` when a
                schema was added under the empty name (it became ``root``).
        """
        rules = str(self._converter.format_grammar())  # type: ignore[no-untyped-call]
        if root is None:
            return rules
        return f"root ::= {root}\n{rules}"


def json_schema_to_grammar(
    schema: Mapping[str, Any], *, param: str = "response_format.json_schema.schema"
) -> str:
    """A GBNF grammar (entry rule ``root``) accepting exactly the JSON the schema allows.

    Args:
        schema: A JSON Schema (objects, arrays, enums, ``required``, ``$defs``...).
        param: The request field to name in errors.

    Raises:
        InvalidRequestError: the schema is invalid or cannot be expressed as a grammar.
    """
    builder = SchemaGrammar()
    builder.add(schema, "", param=param)  # the converter names the unnamed rule "root"
    return builder.grammar()


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


def response_format_grammar(response_format: Mapping[str, Any] | None) -> str | None:
    """The grammar enforcing an OpenAI ``response_format``, or ``None`` for plain text."""
    schema = response_format_schema(response_format)
    if schema is None:
        return None
    return json_schema_to_grammar(schema)


def validate_json_output(text: str, schema: Mapping[str, Any]) -> list[str]:
    """Check a model's output against a schema.

    Returns:
        Human-readable problems, empty when ``text`` is JSON valid for ``schema``.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return [f"not valid JSON: {exc}"]
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]
