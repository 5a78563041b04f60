"""English person names after a title or an introduction (``Mr. John Smith``, ``my name is
Jane Doe``).

No English NER model installs from PyPI without a download from a model hub, so this
is a rule, not a model: a name without such a cue is not found (see docs/privacy.md).
"""

from __future__ import annotations

from luodi.privacy.recognizer import Pattern, PatternRecognizer

__all__ = ["EnPersonNameRecognizer"]

_NAME = r"[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?(?: [A-Z]\.)?(?: [A-Z][a-z]+(?:[-'][A-Z][a-z]+)?){0,2}"


class EnPersonNameRecognizer(PatternRecognizer):
    """Titled or introduced English names; the title itself is not part of the finding."""

    name = "en_person_name"
    entity_type = "PERSON"
    patterns = (
        Pattern("title", r"\b(?:Mr|Ms|Mrs|Dr|Miss|Prof)\.? (?P<pii>" + _NAME + r")\b", 0.7),
        Pattern(
            "intro",
            r"\b(?:[Mm]y name is|I am|I'm|[Nn]ame:|[Dd]ear|[Cc]ustomer:|[Ss]igned,) (?P<pii>"
            + _NAME
            + r")\b",
            0.6,
        ),
    )
