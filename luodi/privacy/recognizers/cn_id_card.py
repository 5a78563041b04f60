"""Chinese resident identity card numbers (GB 11643): 18-character and legacy 15-digit."""

from __future__ import annotations

from luodi.privacy.checksums import cn_id_valid
from luodi.privacy.recognizer import Pattern, PatternRecognizer

__all__ = ["CnIdCardRecognizer"]

# Checked after the first digit is consumed, so the regex engine can skip ahead to
# candidate digits instead of trying a look-behind at every position.
_AFTER_EDGE = r"(?<![0-9A-Za-z].)(?<![0-9][ -].)"
_EDGE_R = r"(?![0-9A-Za-z])"
_DATE18 = r"(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
_DATE15 = r"\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"


class CnIdCardRecognizer(PatternRecognizer):
    """Region code, birth date, sequence and check digit; the check digit and the date
    must be valid, so an order number of the same length does not match.

    Near-miss: the 18-character shape with a wrong check digit or an impossible date
    (30 February, a birth date in the future), next to a context word.
    """

    name = "cn_id_card"
    entity_type = "ID_CARD"
    patterns = (
        Pattern("18", r"[1-9]" + _AFTER_EDGE + r"\d{5}" + _DATE18 + r"\d{3}[0-9Xx]" + _EDGE_R, 0.9),
        # 15 digits with a plausible date is still often something else: needs context.
        Pattern("15", r"[1-9]" + _AFTER_EDGE + r"\d{5}" + _DATE15 + r"\d{3}" + _EDGE_R, 0.35),
    )
    negative_context = ("订单号", "流水号", "单号", "交易号", "order")
    context = ("身份证", "证件", "公民身份", "id card", "identity", "id no", "id number")

    def validate(self, value: str) -> bool:
        return cn_id_valid(value)

    def near_miss(self, value: str) -> bool:
        # The 15-digit form has no check digit to get wrong.
        return len(value) == 18
