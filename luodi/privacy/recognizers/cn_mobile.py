"""Mainland China mobile numbers, with or without +86 and with spaces or dashes."""

from __future__ import annotations

import re

from luodi.privacy.recognizer import NEAR_MISS_SCORE, Pattern, PatternRecognizer

__all__ = ["CnMobileRecognizer"]

# Carrier prefixes after the leading 1: 13x, 145-149, 15x but 154, 162/5/6/7,
# 170-178, 18x, 19x.
_REST = r"(?:3\d|4[5-9]|5[0-35-9]|6[2567]|7[0-8]|8\d|9[0-35-9])"
# Checked after the leading 1 is consumed, so the regex engine can skip ahead to
# candidate digits instead of trying a look-behind at every position.
_AFTER_EDGE = r"(?<![0-9A-Za-z+].)(?<![0-9][ -].)"
_EDGE_R = r"(?![0-9A-Za-z])"
_EDGE_RG = r"(?![0-9A-Za-z])(?![ -][0-9])"
_VALID = re.compile(r"1" + _REST + r"\d{8}")


class CnMobileRecognizer(PatternRecognizer):
    """Eleven digits on a carrier prefix, grouped 3-4-4 or not.

    Near-miss (mobiles carry no check digit, so the prefix and the length are the
    check): eleven digits on an unallocated prefix (12x, 154), or ten or twelve digits
    starting with 1 (one digit dropped or doubled), next to a context word.
    """

    name = "cn_mobile"
    entity_type = "PHONE"
    patterns = (
        Pattern("intl", r"(?:\+|00)86[ -]?1" + _REST + r"[ -]?\d{4}[ -]?\d{4}" + _EDGE_R, 0.9),
        Pattern("plain", r"1" + _AFTER_EDGE + _REST + r"\d{8}" + _EDGE_R, 0.8),
        Pattern("grouped", r"1" + _AFTER_EDGE + _REST + r"([ -])\d{4}\1\d{4}" + _EDGE_RG, 0.8),
    )
    negative_context = ("订单号", "流水号", "单号", "交易号", "工号", "编号", "order")
    context = ("手机", "电话", "联系", "致电", "来电", "号码", "tel", "phone", "mobile", "call")
    near_miss_patterns = (
        Pattern("near_miss", r"1" + _AFTER_EDGE + r"\d{9,11}" + _EDGE_R, NEAR_MISS_SCORE),
        Pattern(
            "near_miss_grouped",
            r"1" + _AFTER_EDGE + r"\d{2}([ -])\d{3,5}\1\d{3,5}" + _EDGE_RG,
            NEAR_MISS_SCORE,
        ),
    )

    def near_miss(self, value: str) -> bool:
        digits = "".join(c for c in value if c.isdigit())
        return 10 <= len(digits) <= 12 and _VALID.fullmatch(digits) is None
