"""What the analyzer reports: one typed span of personal data."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Finding"]


@dataclass(frozen=True, slots=True)
class Finding:
    """A span ``text[start:end]`` that a recognizer believes is ``entity_type``.

    Attributes:
        entity_type: upper-case type name such as ``PHONE`` or ``ID_CARD``.
        start: offset of the first character.
        end: offset one past the last character.
        score: confidence in [0, 1], after context words were counted.
        recognizer: name of the recognizer and rule that fired (``cn_mobile:intl``).
        near_miss: the span has the entity's shape and a context word names it, but it
            fails the checksum (a mistyped ID); reported only when a policy asks for
            near-misses.
    """

    entity_type: str
    start: int
    end: int
    score: float
    recognizer: str
    near_miss: bool = False

    @property
    def length(self) -> int:
        """Characters covered."""
        return self.end - self.start

    def overlaps(self, other: Finding) -> bool:
        """Whether the two spans share at least one character."""
        return self.start < other.end and other.start < self.end

    def to_dict(self, text: str | None = None) -> dict[str, object]:
        """JSON-ready form; includes the matched text only when ``text`` is given."""
        out: dict[str, object] = {
            "entity_type": self.entity_type,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 4),
            "recognizer": self.recognizer,
        }
        if self.near_miss:
            out["near_miss"] = True
        if text is not None:
            out["text"] = text[self.start : self.end]
        return out
