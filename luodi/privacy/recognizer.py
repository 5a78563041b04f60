"""The recognizer extension point: a Protocol, and the regex-plus-checksum base class.

Like Presidio's pattern recognizers, detection is data (``patterns``, ``context``) and
validation is a method; every built-in recognizer and every custom rule is one.

A match that fails validation may still be a *near-miss*: the entity's shape with a
mistyped check digit (``near_miss``), or a look-alike shape (``near_miss_patterns``).
Near-misses are reported only by ``find_with_near_misses``, only when a context word
names the entity, and flagged on the finding, so a policy decides whether they count.
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
    "NEAR_MISS_SCORE",
    "NearMissRecognizer",
    "Pattern",
    "PatternRecognizer",
    "Recognizer",
    "has_context",
]

CONTEXT_WINDOW = 24
"""Characters either side of a match searched for context words."""

CONTEXT_BOOST = 0.3
"""Score added when a context word is near a match (capped at 1.0)."""

NEAR_MISS_SCORE = 0.6
"""Score of a near-miss (it always has a context word): above the default threshold of
0.5, below every validated match with context, so a valid finding it overlaps wins."""


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


@runtime_checkable
class NearMissRecognizer(Recognizer, Protocol):
    """A recognizer that can also report near-misses (see the module docstring)."""

    def find_with_near_misses(self, text: str) -> list[Finding]:
        """What ``find`` returns, plus near-misses flagged ``near_miss=True``."""
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
    near_miss_patterns: Sequence[Pattern] = ()
    """Look-alike shapes (a mobile number one digit short), matched only when near-misses
    are asked for; a match counts only if ``near_miss`` accepts it."""

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
        self._compiled = [
            (p, re.compile(p.regex, p.flags), lookalike)
            for lookalike, group in ((False, self.patterns), (True, self.near_miss_patterns))
            for p in group
        ]

    def validate(self, value: str) -> bool:
        """Whether a regex match really is the entity (checksums, dates); default: yes."""
        return self._validator(value) if self._validator is not None else True

    def near_miss(self, value: str) -> bool:
        """Whether ``value`` is a look-alike worth protecting when a context word names it.

        Called for a match of ``patterns`` that ``validate`` rejected (true when only the
        checksum failed, not when the value belongs to another rule) and for every match
        of ``near_miss_patterns`` (false for a valid value). Default: never.
        """
        return False

    def find(self, text: str) -> list[Finding]:
        return self._scan(text, near_misses=False)

    def find_with_near_misses(self, text: str) -> list[Finding]:
        """What ``find`` returns, plus near-misses flagged ``near_miss=True``."""
        return self._scan(text, near_misses=True)

    def _scan(self, text: str, *, near_misses: bool) -> list[Finding]:
        found: list[Finding] = []
        for pattern, regex, lookalike in self._compiled:
            if lookalike and not near_misses:
                continue
            group = "pii" if "pii" in regex.groupindex else 0
            for m in regex.finditer(text):
                start, end = m.span(group)
                if start == end:
                    continue
                value = m.group(group)
                if lookalike:
                    near = self.near_miss(value)
                    if not near:
                        continue
                elif self.validate(value):
                    near = False
                elif near_misses and self.near_miss(value):
                    near = True
                else:
                    continue
                if self._negative and _preceded_by(text, start, self._negative):
                    continue
                context = bool(self.context) and has_context(text, start, end, self.context)
                if near:
                    if not context:
                        continue  # a look-alike counts only where a word names it
                    score = NEAR_MISS_SCORE
                else:
                    score = min(1.0, pattern.score + CONTEXT_BOOST) if context else pattern.score
                found.append(
                    Finding(
                        self.entity_type,
                        start,
                        end,
                        score,
                        f"{self.name}:{pattern.name}",
                        near_miss=near,
                    )
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
