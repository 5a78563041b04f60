"""Check digits that turn "looks like a number" into "is one": Luhn, GB 11643, GB 32100."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

__all__ = ["VALIDATORS", "cn_id_shaped", "cn_id_valid", "luhn_valid", "uscc_valid"]

# GB 11643-1999: weight of position i is 2**(17 - i) mod 11; remainder -> check character.
_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"
# GB 32100-2015: 31 characters (no I, O, Z, S, V); weight of position i is 3**i mod 31.
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


_CN_ID_SHAPE = re.compile(
    r"\d{6}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9X]"
)


def cn_id_shaped(value: str) -> bool:
    """Eighteen characters laid out like a resident ID (birth date in place), whatever
    the check digit: a mistyped ID is still an ID, not a card or a company code."""
    return len(value) == 18 and _CN_ID_SHAPE.fullmatch(value.upper()) is not None


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


def luhn_valid(value: str) -> bool:
    """Luhn (mod 10) check over the digits of ``value``; separators are ignored."""
    digits = _digits(value)
    if len(digits) < 12:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _valid_date(year: int, month: int, day: int) -> bool:
    try:
        born = dt.date(year, month, day)
    except ValueError:
        return False
    return born <= dt.date.today()


def cn_id_valid(value: str) -> bool:
    """A resident ID: 18 characters with a valid birth date and check digit, or 15 digits
    (the pre-1999 form, born 19yy) with a valid birth date."""
    v = value.strip().upper()
    if len(v) == 15 and v.isdigit():
        return _valid_date(1900 + int(v[6:8]), int(v[8:10]), int(v[10:12]))
    if len(v) != 18 or not v[:17].isdigit():
        return False
    if not _valid_date(int(v[6:10]), int(v[10:12]), int(v[12:14])):
        return False
    total = sum((ord(c) - 48) * w for c, w in zip(v[:17], _CN_ID_WEIGHTS, strict=True))
    return _CN_ID_CHECK[total % 11] == v[17]


def uscc_valid(value: str) -> bool:
    """A unified social credit code (18 characters) whose last character checks out."""
    v = value.strip().upper()
    if len(v) != 18 or any(c not in _USCC_CHARS for c in v):
        return False
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(v[:17], _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31] == v[17]


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "luhn": luhn_valid,
    "cn_id": cn_id_valid,
    "uscc": uscc_valid,
}
"""Validators a custom rule may name in config."""
