"""Check digits: Luhn, GB 11643 (resident ID) and GB 32100 (social credit code)."""

from __future__ import annotations

import pytest

from luodi.privacy.checksums import cn_id_valid, luhn_valid, uscc_valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("4111111111111111", True),
        ("4111 1111 1111 1111", True),
        ("6222021234567890128", True),
        ("6222021234567890127", False),
        ("4111111111111112", False),
        ("12345", False),
    ],
)
def test_luhn_accepts_only_numbers_with_a_correct_check_digit(value: str, valid: bool) -> None:
    assert luhn_valid(value) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("11010519491231002X", True),
        ("11010519491231002x", True),
        ("110105194912310021", False),  # wrong check digit
        ("110105194902300026", False),  # 30 February
        ("110105299901010010", False),  # born in the future
        ("110105491231002", True),  # legacy 15-digit form
        ("110105491331002", False),  # month 13
    ],
)
def test_resident_id_needs_a_valid_date_and_check_digit(value: str, valid: bool) -> None:
    assert cn_id_valid(value) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("91350100M000100Y43", True),
        ("91350100M000100Y44", False),
        ("91350100M000100Y4", False),
        ("9135010OM000100Y43", False),  # O is not in the code's alphabet
    ],
)
def test_social_credit_code_check_character(value: str, valid: bool) -> None:
    assert uscc_valid(value) is valid
