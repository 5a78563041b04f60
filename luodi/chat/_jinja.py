"""The sandboxed Jinja environment chat templates run in, with what HF templates expect.

Hugging Face's ``apply_chat_template`` renders in an ``ImmutableSandboxedEnvironment``
with ``trim_blocks``/``lstrip_blocks``, the loop-controls extension, a ``tojson``
filter that keeps non-ASCII text, and the globals ``raise_exception`` and
``strftime_now``. Templates written for it must render the same here, or the model
sees a prompt it was not trained on.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NoReturn

from jinja2 import TemplateError, nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateRaisedError(TemplateError):
    """A template called ``raise_exception(message)``: the messages break its rules."""


def _raise_exception(message: str) -> NoReturn:
    raise TemplateRaisedError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # The same signature as transformers' tojson, so templates render byte-identical.
    return json.dumps(
        value,
        ensure_ascii=ensure_ascii,
        indent=indent,
        separators=separators,
        sort_keys=sort_keys,
    )


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


class _GenerationTag(Extension):
    """``{% generation %}...{% endgeneration %}``: HF marks assistant spans with it; a no-op."""

    tags = {"generation"}  # noqa: RUF012 - jinja reads it as a class attribute

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def make_environment() -> ImmutableSandboxedEnvironment:
    """A fresh sandboxed environment for one template (no shared mutable state)."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        extensions=[loopcontrols, _GenerationTag],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env
