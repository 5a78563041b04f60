"""US social security numbers in the dashed form, excluding never-issued ranges."""

from __future__ import annotations

from luodi.privacy.recognizer import Pattern, PatternRecognizer

__all__ = ["UsSsnRecognizer"]


class UsSsnRecognizer(PatternRecognizer):
    """``AAA-GG-SSSS``: area not 000, 666 or 9xx; group not 00; serial not 0000."""

    name = "us_ssn"
    entity_type = "US_SSN"
    patterns = (
        Pattern(
            "dashed",
            r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])",
            0.6,
        ),
        Pattern("plain", r"(?<!\d)(?!000|666|9\d\d)\d{3}(?!00)\d{2}(?!0000)\d{4}(?!\d)", 0.1),
    )
    context = ("ssn", "social security", "社会安全号")
