"""Payment card numbers of every brand: a valid IIN at one of its lengths, and Luhn."""

from __future__ import annotations

from luodi.privacy.card_brands import UNIONPAY, card_brand
from luodi.privacy.checksums import cn_id_shaped, luhn_valid
from luodi.privacy.recognizer import Pattern, PatternRecognizer

__all__ = ["CreditCardRecognizer", "branded"]

# Checked after the first digit is consumed, so the regex engine can skip ahead to
# candidate digits instead of trying a look-behind at every position.
_AFTER_EDGE = r"(?<![0-9A-Za-z].)(?<![0-9][ -].)"
_EDGE_R = r"(?![0-9A-Za-z])"
_EDGE_RG = r"(?![0-9A-Za-z])(?![ -][0-9])"
# JCB 1800, 2131; Mir, Mastercard 2…; 3-6; Troy 9792; Maestro's old 0604.
_FIRST = r"(?:[1-69]|0(?=604))"


def branded(digits: str) -> bool:
    """Whether ``digits`` is a card brand's number other than UnionPay (``BANK_CARD``'s)."""
    brand = card_brand(digits)
    return brand is not None and brand != UNIONPAY


class CreditCardRecognizer(PatternRecognizer):
    """12-19 digits, plain or grouped as printed (4-4-4-4, 4-6-5, 4-6-4, ...), whose IIN
    and length belong to a brand (``card_brands.BRANDS``) and which pass Luhn.

    UnionPay numbers are the bank-card rule's (typed ``BANK_CARD``); an 18-digit number
    laid out like a resident ID is the ID rule's. Scores above the generic bank-card
    rule, so a branded card is typed CREDIT_CARD.

    Near-miss: a branded number failing Luhn, next to a context word (信用卡, card…).
    """

    name = "credit_card"
    entity_type = "CREDIT_CARD"
    patterns = (
        Pattern("plain", _FIRST + _AFTER_EDGE + r"\d{11,18}" + _EDGE_R, 0.85),
        Pattern(
            "grouped",
            _FIRST + _AFTER_EDGE + r"\d{3}(?:([ -])\d{4}){2,3}(?:\1\d{1,4})?" + _EDGE_RG,
            0.85,
        ),
        # Amex 4-6-5 and Diners 4-6-4, as embossed.
        Pattern("4-6-n", "3" + _AFTER_EDGE + r"\d{3}([ -])\d{6}\1\d{4,5}" + _EDGE_RG, 0.85),
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
    context = ("信用卡", "卡号", "credit", "card", "visa", "mastercard", "amex", "jcb", "diners")

    def validate(self, value: str) -> bool:
        digits = "".join(c for c in value if c.isdigit())
        return branded(digits) and luhn_valid(digits) and not cn_id_shaped(digits)

    def near_miss(self, value: str) -> bool:
        # A brand's number failing Luhn; an ID-shaped number is the ID card rule's.
        digits = "".join(c for c in value if c.isdigit())
        return branded(digits) and not cn_id_shaped(digits)
