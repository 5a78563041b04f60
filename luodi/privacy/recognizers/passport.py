"""Passport numbers: Chinese ordinary passports, and others when the word is nearby."""

from __future__ import annotations

from luodi.privacy.recognizer import Pattern, PatternRecognizer

__all__ = ["PassportRecognizer"]

_EDGE_L = r"(?<![0-9A-Za-z])"
_EDGE_R = r"(?![0-9A-Za-z])"


class PassportRecognizer(PatternRecognizer):
    """``E12345678`` / ``EA1234567`` (China since 2012), ``G12345678``; a generic
    letter-plus-digits form scores low and needs a context word such as 护照."""

    name = "passport"
    entity_type = "PASSPORT"
    patterns = (
        Pattern("cn", _EDGE_L + r"(?:E[0-9A-HJ-NP-Z]\d{7}|[GDSP]\d{8})" + _EDGE_R, 0.6),
        Pattern("generic", _EDGE_L + r"[A-Z]{1,2}\d{7,8}" + _EDGE_R, 0.2),
    )
    context = ("护照", "passport", "证件", "出入境", "签证", "visa")
