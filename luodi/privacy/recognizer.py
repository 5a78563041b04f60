"""The recognizer extension point: a Protocol, and the regex-plus-checksum base class.

Like Presidio's pattern recognizers, detection is data (``patterns``, ``context``) and
validation is a method; every built-in recognizer and every custom rule is one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from luodi.privacy.finding import Finding

__all__ = [
    "CONTEXT_BOOST",
    "CONTEXT_WINDOW",
    "Pattern",
    "PatternRecognizer",
    "Recognizer",
    "has_context",
]

CONTEXT_WINDOW = 24
"""Characters either side of a match searched for context words."""

CONTEXT_BOOST = 0.3
"""Score added when a context word is near a match (capped at 1.0)."""


@runtime_checkable
class Recognizer(Protocol):
    """Finds one kind of personal data in text."""

    @property
    def name(self) -> str:
        """Unique name; findings carry it as ``name:rule``."""
        ...

    @property
    def entity_types(self) -> tuple[str, ...]:
        """Entity types this recognizer can emit."""
        ...

    def find(self, text: str) -> list[Finding]:
        """All findings in ``text`` with context already counted in their scores."""
        ...


@dataclass(frozen=True, slots=True)
class Pattern:
    """One regex of a recognizer: ``name`` shows in findings as ``recognizer:name``.

    When the regex has a group named ``pii`` only that group is the finding, so a
    cue such as a title can be required without being masked.
    """

    name: str
    regex: str
    score: float
    flags: int = 0


class PatternRecognizer:
    """Regexes, an optional checksum, and context words that raise the score.

    Subclasses set the class attributes; custom rules pass them to ``__init__``.
    """

    name: str = ""
    entity_type: str = ""
    patterns: Sequence[Pattern] = ()
    context: Sequence[str] = ()
    negative_context: Sequence[str] = ()
    """Words that, right before a match, mark it as something else (订单号, 流水号)."""

    def __init__(
        self,
        *,
        name: str | None = None,
        entity_type: str | None = None,
        patterns: Sequence[Pattern] | None = None,
        context: Sequence[str] | None = None,
        validator: Callable[[str], bool] | None = None,
    ) -> None:
        self.name = name or self.name
        self.entity_type = entity_type or self.entity_type
        self.entity_types: tuple[str, ...] = (self.entity_type,)
        self.patterns = tuple(patterns if patterns is not None else self.patterns)
        self.context = tuple(w.lower() for w in (context if context is not None else self.context))
        self._negative = tuple(w.lower() for w in self.negative_context)
        self._validator = validator
        self._compiled = [(p, re.compile(p.regex, p.flags)) for p in self.patterns]

    def validate(self, value: str) -> bool:
        """Whether a regex match really is the entity (checksums, dates); default: yes."""
        return self._validator(value) if self._validator is not None else True

    def find(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        for pattern, regex in self._compiled:
            group = "pii" if "pii" in regex.groupindex else 0
            for m in regex.finditer(text):
                start, end = m.span(group)
                if start == end or not self.validate(m.group(group)):
                    continue
                score = pattern.score
                if self._negative and _preceded_by(text, start, self._negative):
                    continue
                if self.context and has_context(text, start, end, self.context):
                    score = min(1.0, score + CONTEXT_BOOST)
                found.append(
                    Finding(self.entity_type, start, end, score, f"{self.name}:{pattern.name}")
                )
        return found


def _preceded_by(text: str, start: int, words: Sequence[str]) -> bool:
    """Whether one of ``words`` (lower case) occurs in the few characters before ``start``."""
    before = text[max(0, start - 12) : start].lower()
    return any(w in before for w in words)


def has_context(text: str, start: int, end: int, words: Sequence[str]) -> bool:
    """Whether any of ``words`` (lower case) occurs within the context window of a span."""
    before = text[max(0, start - CONTEXT_WINDOW) : start].lower()
    after = text[end : end + CONTEXT_WINDOW].lower()
    return any(w in before or w in after for w in words)
