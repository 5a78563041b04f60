"""Bank card numbers: 16-19 digits passing Luhn, plain or in groups of four."""

from __future__ import annotations

import re

from luodi.privacy.checksums import cn_id_shaped, luhn_valid
from luodi.privacy.recognizer import Pattern, PatternRecognizer
from luodi.privacy.recognizers.credit_card import branded

__all__ = ["BankCardRecognizer"]

# Checked after the first digit is consumed, so the regex engine can skip ahead to
# candidate digits instead of trying a look-behind at every position.
_AFTER_EDGE = r"(?<![0-9A-Za-z].)(?<![0-9][ -].)"
_EDGE_R = r"(?![0-9A-Za-z])"
_EDGE_RG = r"(?![0-9A-Za-z])(?![ -][0-9])"


class BankCardRecognizer(PatternRecognizer):
    """Debit cards issued in China (UnionPay ``62``, ``81``) and any other Luhn-valid
    16-19 digits no card brand claims.

    Near-miss: the same digits failing Luhn, next to a context word (卡号, 账号…).
    """

    name = "bank_card"
    entity_type = "BANK_CARD"
    patterns = (
        Pattern("plain", r"[1-9]" + _AFTER_EDGE + r"\d{15,18}" + _EDGE_R, 0.8),
        Pattern(
            "grouped",
            r"[1-9]" + _AFTER_EDGE + r"\d{3}(?:([ -])\d{4}){3}(?:\1?\d{1,3})?" + _EDGE_RG,
            0.8,
        ),
    )
    negative_context = (
        "订单号",
        "订单编号",
        "流水号",
        "单号",
        "交易号",
        "运单",
        "order",
        "tracking",
        "reference",
        "ref.",
        "invoice",
    )
    context = ("卡号", "银行卡", "账号", "帐号", "储蓄卡", "借记卡", "转账", "card", "account")

    def validate(self, value: str) -> bool:
        digits = re.sub(r"\D", "", value)
        return not _elsewhere(digits) and luhn_valid(digits)

    def near_miss(self, value: str) -> bool:
        # Failing Luhn, not failing for being another rule's number.
        return not _elsewhere(re.sub(r"\D", "", value))


def _elsewhere(digits: str) -> bool:
    """Whether the number is another rule's to judge."""
    # A brand's number (Visa, JCB, Diners...) is the credit-card rule's; UnionPay stays.
    if branded(digits):
        return True
    # 18 digits with a birth date where an ID card has one, outside UnionPay's 62
    # range: a (mistyped) resident ID, not a card.
    return not digits.startswith("62") and cn_id_shaped(digits)
