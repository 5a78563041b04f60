"""Mainland China landlines with an area code: ``010-12345678``, ``(0755) 8765 4321``."""

from __future__ import annotations

from luodi.privacy.recognizer import Pattern, PatternRecognizer

__all__ = ["CnLandlineRecognizer"]

# 010 and 02x are the three-digit area codes; the others are 0 + three digits.
_AREA = r"(?:010|02\d|0[3-9]\d{2})"
_EDGE_L = r"(?<![0-9A-Za-z])(?<![0-9][ -])"
_EDGE_R = r"(?![0-9A-Za-z])"
_EDGE_RG = r"(?![0-9A-Za-z])(?![ -][0-9])"


class CnLandlineRecognizer(PatternRecognizer):
    """Area code, then a 7-8 digit local number, optionally an extension."""

    name = "cn_landline"
    entity_type = "LANDLINE"
    patterns = (
        Pattern(
            "separated",
            _EDGE_L + r"(?:\(" + _AREA + r"\)[ -]?|" + _AREA + r"[ -])[2-9]\d{2,3}[ -]?\d{4}"
            r"(?:[-转]\d{1,5})?" + _EDGE_R,
            0.7,
        ),
        Pattern("plain", _EDGE_L + r"(?:\+86[ -]?)?" + _AREA + r"[2-9]\d{6,7}" + _EDGE_R, 0.4),
    )
    context = ("电话", "座机", "固话", "联系", "传真", "致电", "tel", "phone", "fax")
