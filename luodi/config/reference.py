"""The configuration reference (docs/configuration.md), generated from the Settings model.

Each knob's text is the docstring under its field, so the code and the reference
cannot drift apart: a test regenerates the page and compares.

    python -m luodi.config.reference > docs/configuration.md
"""

from __future__ import annotations

import ast
import enum
import inspect
import itertools
import textwrap
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from luodi.config import Settings

__all__ = ["render_reference"]


@cache
def _field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings (a string literal right under a field) of one class."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, nxt in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _doc(model: type[BaseModel], name: str, info: FieldInfo) -> str:
    if info.description:
        return info.description
    for cls in model.__mro__:
        text = _field_docs(cls).get(name)
        if text:
            return text
    return ""


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        try:
            value: Any = info.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
        if not isinstance(value, list | dict | tuple | set | BaseModel):
            return "(computed)"  # machine-dependent (cores, home folder): see the meaning
    elif info.default is PydanticUndefined:
        return "(required)"
    else:
        value = info.default
    if isinstance(value, BaseModel):
        return "(section)"
    if isinstance(value, enum.Enum):
        value = value.value
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text.replace("|", "\\|")


def _nested_model(info: FieldInfo) -> type[BaseModel] | None:
    ann = info.annotation
    if inspect.isclass(ann) and issubclass(ann, BaseModel):
        return ann
    return None


def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        sub = _nested_model(info)
        if sub is not None:
            nested.append((f"{prefix}{name}", sub))
            continue
        key = f"{prefix}{name}"
        env = "LUODI_" + key.upper().replace(".", "__")
        rows.append((key, _default(info), env, _doc(model, name, info)))
    for key, sub in nested:
        rows.extend(_rows(sub, f"{key}."))
    return rows


def render_reference() -> str:
    """Markdown listing every setting with its default, variable and meaning."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `luodi.config.Settings` by `python -m luodi.config.reference`;"
        " do not edit by hand.",
        "",
        "Settings come from a YAML file (`--config PATH` or `LUODI_CONFIG`), then `LUODI_*`"
        " environment variables (nested keys joined with `__`), then command-line flags.",
        "",
    ]
    for section, info in Settings.model_fields.items():
        sub = _nested_model(info)
        if sub is None:
            continue
        lines += [f"## `{section}`", "", _doc(Settings, section, info), ""]
        lines += ["| key | default | environment | meaning |", "|---|---|---|---|"]
        for key, default, env, doc in _rows(sub, f"{section}."):
            lines.append(f"| `{key}` | `{default}` | `{env}` | {doc} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_reference())
