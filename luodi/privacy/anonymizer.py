"""Apply operators to findings: the text with every finding replaced, and what was done."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from luodi.errors import ConfigError
from luodi.privacy.finding import Finding
from luodi.privacy.operators import OPERATORS, OperatorContext

__all__ = ["AnonymizedText", "Anonymizer", "Replacement"]


@dataclass(frozen=True, slots=True)
class Replacement:
    """One finding as it was replaced; offsets refer to the anonymized text."""

    entity_type: str
    operator: str
    start: int
    end: int
    new_text: str


@dataclass(frozen=True, slots=True)
class AnonymizedText:
    """The anonymized text and one ``Replacement`` per finding, in order."""

    text: str
    items: tuple[Replacement, ...] = field(default_factory=tuple)

    def counts(self) -> dict[str, int]:
        """Entity type -> number of replacements (for the audit record)."""
        return dict(Counter(i.entity_type for i in self.items))


class Anonymizer:
    """Replaces findings with the output of the operator named for their entity type."""

    def __init__(self, context: OperatorContext | None = None) -> None:
        self.context = context or OperatorContext()

    def anonymize(
        self,
        text: str,
        findings: Sequence[Finding],
        operators: Mapping[str, str] | str = "replace",
        *,
        context: OperatorContext | None = None,
    ) -> AnonymizedText:
        """Replace each finding of ``text``.

        Args:
            text: the original text.
            findings: non-overlapping findings (as ``Analyzer.analyze`` returns them).
            operators: operator name per entity type, or one name for all; an entity
                type missing from the mapping uses its ``"DEFAULT"`` entry, or is kept.
            context: per-call operator state (vault, numbering); the anonymizer's own
                context when None.

        Raises:
            ConfigError: an operator name is unknown or lacks what it needs.
        """
        ctx = context or self.context
        pieces: list[str] = []
        items: list[Replacement] = []
        cursor = 0
        offset = 0
        for f in sorted(findings, key=lambda f: f.start):
            if f.start < cursor:
                continue  # overlapping input: the earlier finding already covers it
            name = (
                operators
                if isinstance(operators, str)
                else operators.get(f.entity_type, operators.get("DEFAULT", ""))
            )
            if not name:
                continue
            op = OPERATORS.get(name)
            if op is None:
                raise ConfigError(f"unknown PII operator {name!r} for {f.entity_type}")
            new = op(f.entity_type, text[f.start : f.end], ctx)
            pieces.append(text[cursor : f.start])
            start = f.start + offset
            pieces.append(new)
            items.append(Replacement(f.entity_type, name, start, start + len(new), new))
            offset += len(new) - f.length
            cursor = f.end
        pieces.append(text[cursor:])
        return AnonymizedText("".join(pieces), tuple(items))
