"""Multiple-choice task sets: JSONL items, an optional YAML definition, prompt building.

A task file holds one JSON object per line::

    {"question": "...", "choices": ["...", "..."], "answer": 1, "subject": "..."}

``answer`` indexes ``choices``; ``subject`` is optional. A YAML file beside it (same
stem, ``.yaml``), or one named explicitly, may set the prompt template, the few-shot
count and how a choice is continued (its text, or its letter). A bad line stops the
load with one message naming the file and the line: a task set is data a person wrote,
and the first mistake is the one to show.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml  # type: ignore[import-untyped]

from luodi.errors import ConfigError

__all__ = ["Item", "Task", "TaskDefinition", "TaskFileError", "load_task"]

LETTERS = string.ascii_uppercase


class TaskFileError(ConfigError):
    """A task file (or its YAML definition) that cannot be read; names file and line."""


@dataclass(frozen=True, slots=True)
class Item:
    """One multiple-choice question."""

    question: str
    choices: tuple[str, ...]
    answer: int
    subject: str | None = None


@dataclass(frozen=True, slots=True)
class TaskDefinition:
    """How items become prompts.

    ``template`` is formatted with ``question``, ``choices`` (lettered lines) and
    ``subject``; the continuation scored for choice ``i`` is ``" " + text`` or
    ``" " + letter`` (``continuation``). Few-shot examples are the first ``fewshot``
    items of the file other than the one asked, each followed by its right answer.
    """

    template: str = "Question: {question}\nAnswer:"
    continuation: Literal["text", "letter"] = "text"
    fewshot: int = 0
    description: str = ""

    def context(self, item: Item, examples: list[Item]) -> str:
        """The prompt before a choice: description, examples answered, then the item."""
        shots = [self._render(ex) + self.continuation_of(ex, ex.answer) + "\n\n" for ex in examples]
        head = self.description + "\n\n" if self.description else ""
        return head + "".join(shots) + self._render(item)

    def continuation_of(self, item: Item, index: int) -> str:
        """The text scored for one choice; it starts with a space, as lm-eval's do."""
        if self.continuation == "letter":
            return " " + LETTERS[index]
        return " " + item.choices[index]

    def _render(self, item: Item) -> str:
        return self.template.format(
            question=item.question,
            choices=lettered(item),
            subject=item.subject or "",
        )


def lettered(item: Item) -> str:
    """``A. first\\nB. second ...``: the choices as a chat prompt shows them."""
    return "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(item.choices))


@dataclass(frozen=True, slots=True)
class Task:
    """A loaded task: its name, definition and items in file order."""

    name: str
    path: Path
    definition: TaskDefinition
    items: list[Item] = field(default_factory=list)

    def examples_for(self, index: int) -> list[Item]:
        """The few-shot examples for item ``index``: the first ones that are not it."""
        k = self.definition.fewshot
        if k == 0:
            return []
        return [it for i, it in enumerate(self.items) if i != index][:k]


def load_task(path: Path, definition: Path | None = None) -> Task:
    """Read a JSONL task file and its YAML definition (explicit, or ``<stem>.yaml``)."""
    if not path.is_file():
        raise TaskFileError(f"{path}: no such task file")
    yaml_path = definition or path.with_suffix(".yaml")
    spec = _load_definition(yaml_path) if definition or yaml_path.is_file() else TaskDefinition()
    items: list[Item] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            items.append(_parse_item(path, number, line))
    if not items:
        raise TaskFileError(f"{path}: no items")
    return Task(name=path.stem, path=path, definition=spec, items=items)


def _parse_item(path: Path, number: int, line: str) -> Item:
    where = f"{path}:{number}"
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TaskFileError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise TaskFileError(f"{where}: expected a JSON object")
    question, choices, answer = raw.get("question"), raw.get("choices"), raw.get("answer")
    if not isinstance(question, str) or not question.strip():
        raise TaskFileError(f"{where}: 'question' must be a non-empty string")
    if (
        not isinstance(choices, list)
        or len(choices) < 2
        or not all(isinstance(c, str) and c for c in choices)
    ):
        raise TaskFileError(f"{where}: 'choices' must be a list of at least 2 non-empty strings")
    if len(choices) > len(LETTERS):
        raise TaskFileError(f"{where}: at most {len(LETTERS)} choices")
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise TaskFileError(
            f"{where}: 'answer' must be an index into choices (0..{len(choices) - 1}),"
            f" got {answer!r}"
        )
    subject = raw.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise TaskFileError(f"{where}: 'subject' must be a string")
    return Item(question=question, choices=tuple(choices), answer=answer, subject=subject)


def _load_definition(path: Path) -> TaskDefinition:
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise TaskFileError(f"{path}: no such task definition") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise TaskFileError(f"{path}{line}: not YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise TaskFileError(f"{path}: expected a mapping")
    known = {"template", "continuation", "fewshot", "description"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise TaskFileError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
    spec = TaskDefinition(**raw)
    if spec.continuation not in ("text", "letter"):
        raise TaskFileError(f"{path}: continuation must be 'text' or 'letter'")
    if not isinstance(spec.fewshot, int) or spec.fewshot < 0:
        raise TaskFileError(f"{path}: fewshot must be a whole number >= 0")
    try:
        spec.template.format(question="", choices="", subject="")
    except (KeyError, IndexError, ValueError) as exc:
        raise TaskFileError(f"{path}: template: unknown field {exc}") from None
    return spec
