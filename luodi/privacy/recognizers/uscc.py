"""Unified social credit codes of organisations (GB 32100), with their check character."""

from __future__ import annotations

from luodi.privacy.checksums import cn_id_shaped, uscc_valid
from luodi.privacy.recognizer import Pattern, PatternRecognizer

__all__ = ["UsccRecognizer"]

_C = "0-9A-HJ-NPQRTUWXY"


class UsccRecognizer(PatternRecognizer):
    """Registration authority, type, region code (six digits), organisation code, check."""

    name = "uscc"
    entity_type = "USCC"
    patterns = (
        Pattern(
            "code",
            rf"(?<![0-9A-Za-z])[1-9A-HNY][1-9]\d{{6}}[{_C}]{{9}}[{_C}](?![0-9A-Za-z])",
            0.85,
        ),
    )
    context = ("信用代码", "统一社会", "税号", "纳税人识别号", "营业执照", "uscc")

    def validate(self, value: str) -> bool:
        # All digits with a birth date where an ID card has one: a (mistyped) resident
        # ID, not a company; the ID card rule decides.
        if cn_id_shaped(value):
            return False
        return uscc_valid(value)
