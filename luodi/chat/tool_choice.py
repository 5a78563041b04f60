"""``tool_choice``: whether the model may, must, or must not call tools, and the grammar.

Semantics follow vLLM's OpenAI server:

- ``none``: no calls; the output is not parsed for them (luodi also leaves the
  tools out of the prompt, so the model is not tempted to write one).
- ``auto`` (the default when ``tools`` are given): the model decides; calls in
  the output are parsed.
- ``required``: at least one call, enforced with a grammar.
- ``{"type": "function", "function": {"name": N}}``: exactly one call to ``N``,
  enforced with a grammar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from luodi.chat.structured import JSON_OBJECT_SCHEMA, json_schema_lark
from luodi.chat.tool_calls import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, tool_names
from luodi.errors import InvalidRequestError

__all__ = ["ToolChoiceMode", "ToolPolicy", "resolve_tool_choice", "tool_choice_grammar"]

ToolChoiceMode = Literal["none", "auto", "required", "function"]


@dataclass(frozen=True)
class ToolPolicy:
    """What a request's ``tools`` and ``tool_choice`` mean for prompt, sampling and parsing."""

    mode: ToolChoiceMode
    tools: tuple[Mapping[str, Any], ...] = ()
    function: str | None = None
    """The forced function's name when ``mode == "function"``."""

    @property
    def parse_calls(self) -> bool:
        """Whether the output is searched for ``<tool_call>`` blocks."""
        return self.mode != "none" and bool(self.tools)

    @property
    def prompt_tools(self) -> list[Mapping[str, Any]] | None:
        """The tools to render into the prompt, or ``None``."""
        return list(self.tools) if self.parse_calls else None

    @property
    def forced(self) -> bool:
        """Whether a call is enforced with a grammar."""
        return self.mode in ("required", "function")


def _check_tools(tools: Sequence[Mapping[str, Any]]) -> None:
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if (
            not isinstance(tool, Mapping)
            or tool.get("type", "function") != "function"
            or not isinstance(function, Mapping)
            or not isinstance(function.get("name"), str)
            or not function["name"]
        ):
            raise InvalidRequestError(
                f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ...}}}}",
                param=f"tools[{i}]",
            )
        if function["name"] in seen:
            raise InvalidRequestError(
                f"tools[{i}]: function {function['name']!r} is declared twice",
                param=f"tools[{i}].function.name",
            )
        seen.add(function["name"])


def resolve_tool_choice(
    tools: Sequence[Mapping[str, Any]] | None, tool_choice: str | Mapping[str, Any] | None
) -> ToolPolicy:
    """Check ``tools`` and ``tool_choice`` together and say what they mean.

    Raises:
        InvalidRequestError: a malformed tool, an unknown ``tool_choice``, a forced
            choice without tools, or a named function that is not among them.
    """
    tools = list(tools or [])
    _check_tools(tools)
    if tool_choice is None:
        return ToolPolicy("auto" if tools else "none", tuple(tools))
    if isinstance(tool_choice, str):
        if tool_choice not in ("none", "auto", "required"):
            raise InvalidRequestError(
                f"tool_choice must be none, auto, required or a function, got {tool_choice!r}",
                param="tool_choice",
            )
        if tool_choice == "required" and not tools:
            raise InvalidRequestError(
                "tool_choice 'required' needs at least one tool", param="tool_choice"
            )
        mode: ToolChoiceMode = tool_choice  # type: ignore[assignment]
        return ToolPolicy(mode, tuple(tools))
    function = tool_choice.get("function") if isinstance(tool_choice, Mapping) else None
    name = function.get("name") if isinstance(function, Mapping) else None
    if not isinstance(name, str):
        raise InvalidRequestError(
            "tool_choice must be {'type': 'function', 'function': {'name': ...}}",
            param="tool_choice",
        )
    if name not in tool_names(tools):
        raise InvalidRequestError(
            f"tool_choice names function {name!r}, which is not in tools", param="tool_choice"
        )
    return ToolPolicy("function", tuple(tools), name)


def _call_schema(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool["function"]
    parameters = function.get("parameters") or JSON_OBJECT_SCHEMA
    return {
        "type": "object",
        "properties": {"name": {"const": function["name"]}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def _literal(text: str) -> str:
    """A Lark string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def tool_choice_grammar(
    tools: Sequence[Mapping[str, Any]] | None, tool_choice: str | Mapping[str, Any] | None
) -> str | None:
    """An llguidance (Lark) grammar forcing ``<tool_call>`` output for ``required`` or a name.

    Each call is ``<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>`` with
    the name from ``tools`` and the arguments valid for that function's
    ``parameters`` schema, enforced as ``response_format`` schemas are (strictly when
    every chosen function says ``strict: true``). ``required`` allows one or more
    calls; a named function exactly one.

    Returns:
        ``None`` for ``none`` and ``auto`` (nothing to enforce).

    Raises:
        InvalidRequestError: as :func:`resolve_tool_choice`, or a function's
            ``parameters`` schema cannot be enforced.
    """
    policy = resolve_tool_choice(tools, tool_choice)
    if not policy.forced:
        return None
    chosen = [t for t in policy.tools if policy.function in (None, t["function"]["name"])]
    schemas = [_call_schema(t) for t in chosen]
    strict = all(t["function"].get("strict") is True for t in chosen)
    call = json_schema_lark(
        schemas[0] if len(schemas) == 1 else {"anyOf": schemas}, strict=strict, param="tools"
    )
    start = "block" if policy.mode == "function" else f"block ({_literal(chr(10))} block)*"
    return (
        f"start: {start}\n"
        f"block: {_literal(TOOL_CALL_OPEN + chr(10))} call {_literal(chr(10) + TOOL_CALL_CLOSE)}\n"
        f"call: {call}\n"
    )
