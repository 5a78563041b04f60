"""Reading assistant files: YAML to ``Assistant``, every error one line naming the line.

PyYAML's composer keeps each node's position; the values are built from the node tree
with the line of every key path remembered, so a schema error found by pydantic
(``intents.1.action.type``) is reported at the line that holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from pydantic import ValidationError

from luodi.apps.support.assistant import Assistant
from luodi.errors import ConfigError

__all__ = ["AssistantFileError", "load_assistant", "parse_assistant"]

Path_ = tuple[str | int, ...]


class AssistantFileError(ConfigError):
    """An assistant file that cannot be loaded; the message is ``file:line: problem``."""


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
    """The Python value of ``node``; records the 1-based line of each path in ``lines``."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            if key in out:
                raise _at(key_node, f"key {key!r} appears twice")
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _build(loader, value_node, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), lines) for i, item in enumerate(node.value)]
    return loader.construct_object(node)  # a scalar: its tag resolved (int, bool, null, str)


class _Located(Exception):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


def _at(node: yaml.Node, problem: str) -> _Located:
    return _Located(node.start_mark.line + 1, problem)


def _line_of(loc: tuple[Any, ...], lines: dict[Path_, int]) -> int:
    """The line of the longest prefix of a pydantic error location that the file has."""
    for end in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:end]))
        if line is not None:
            return line
    return 1


def parse_assistant(text: str, source: str = "<assistant>") -> Assistant:
    """Validate one assistant file's text.

    Raises:
        AssistantFileError: ``source:line: problem`` for a YAML or schema error.
    """
    lines: dict[Path_, int] = {}
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = _build(loader, node, (), lines) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise AssistantFileError(f"{source}:{line}: {problem}") from exc
    except yaml.YAMLError as exc:
        raise AssistantFileError(f"{source}:1: {' '.join(str(exc).split())}") from exc
    except _Located as exc:
        raise AssistantFileError(f"{source}:{exc.line}: {exc.problem}") from exc
    if not isinstance(data, dict):
        raise AssistantFileError(f"{source}:1: an assistant file is a mapping (name, intents, ...)")
    try:
        return Assistant.model_validate(data)
    except ValidationError as exc:
        # An unknown key (a typo) explains a missing one beside it: report it first.
        err = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc) or "file"
        message = str(err["msg"]).removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        line = _line_of(loc, lines)
        raise AssistantFileError(f"{source}:{line}: {where}: {message}{more}") from exc


def load_assistant(path: Path) -> Assistant:
    """Read and validate the assistant file at ``path`` (AssistantFileError if bad)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AssistantFileError(f"{path}:1: cannot read: {exc}") from exc
    return parse_assistant(text, str(path))
