"""Credit card numbers by brand prefix (Visa, Mastercard, Amex, JCB, Discover), Luhn-checked."""

from __future__ import annotations

from luodi.privacy.checksums import cn_id_shaped, luhn_valid
from luodi.privacy.recognizer import Pattern, PatternRecognizer

__all__ = ["BRANDS", "CreditCardRecognizer"]

_EDGE_L = r"(?<![0-9A-Za-z])(?<![0-9][ -])"
_EDGE_R = r"(?![0-9A-Za-z])"
_EDGE_RG = r"(?![0-9A-Za-z])(?![ -][0-9])"
BRANDS = r"(?:4\d{3}|5[1-5]\d{2}|2[2-7]\d{2}|35\d{2}|6011|65\d{2}|64[4-9]\d)"


class CreditCardRecognizer(PatternRecognizer):
    """Scores above the generic bank-card rule, so a branded card is typed CREDIT_CARD.

    Near-miss: a branded number failing Luhn, next to a context word (信用卡, card…).
    """

    name = "credit_card"
    entity_type = "CREDIT_CARD"
    patterns = (
        Pattern("plain", _EDGE_L + BRANDS + r"\d{9,15}" + _EDGE_R, 0.85),
        Pattern("grouped", _EDGE_L + BRANDS + r"(?:([ -])\d{4}){3}" + _EDGE_RG, 0.85),
        Pattern("amex", _EDGE_L + r"3[47]\d{2}([ -]?)\d{6}\1\d{5}" + _EDGE_RG, 0.85),
    )
    negative_context = (
        "订单号",
        "流水号",
        "单号",
        "交易号",
        "order",
        "tracking",
        "reference",
        "ref",
    )
    context = ("信用卡", "卡号", "credit", "card", "visa", "mastercard", "amex")

    def validate(self, value: str) -> bool:
        digits = "".join(c for c in value if c.isdigit())
        return luhn_valid(digits) and not cn_id_shaped(digits)

    def near_miss(self, value: str) -> bool:
        # Failing Luhn; an ID-shaped number is the ID card rule's.
        return not cn_id_shaped("".join(c for c in value if c.isdigit()))
