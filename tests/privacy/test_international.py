"""Recognition beyond mainland formats (issue 15): international phones by numbering
plan, every card brand by IIN and length, IBAN by mod 97 — and what must stay unflagged.
"""

from __future__ import annotations

import pytest

from luodi.errors import ConfigError
from luodi.privacy import Analyzer, PIIUnavailableError, RecognizerRegistry
from luodi.privacy.card_brands import card_brand
from luodi.privacy.checksums import luhn_valid
from luodi.privacy.recognizers.iban import iban_valid

from .conftest import make_stage


def with_luhn(body: str) -> str:
    """``body`` plus the check digit that makes it pass Luhn."""
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


DINERS_14 = with_luhn("3056930902590")
JCB_15 = with_luhn("21310000000000")
JCB_15_1800 = with_luhn("18000000000000")
MAESTRO_12 = with_luhn("50180000000")
MAESTRO_0604 = with_luhn("06043575882")
MIR_16 = with_luhn("220012345678901")
VISA_19 = with_luhn("411111111111111111")

POSITIVES = [
    # US numbers as Faker writes them: the misses.
    ("Please call (412)623-3079 today", "PHONE", "(412)623-3079"),
    ("call me at +1-962-945-9571x177 please", "PHONE", "+1-962-945-9571x177"),
    ("my number 812.576.8426x8465.", "PHONE", "812.576.8426x8465"),
    ("reach me on 001-459-329-2244x696", "PHONE", "001-459-329-2244x696"),
    ("call 412-623-3079", "PHONE", "412-623-3079"),
    ("Can someone call me on 2614597755?", "PHONE", "2614597755"),  # unassigned, cued
    ("office +44 20 7946 0958", "PHONE", "+44 20 7946 0958"),
    ("office +44 (0)20 7946 0958", "PHONE", "+44 (0)20 7946 0958"),
    ("dial 0044 20 7946 0958", "PHONE", "0044 20 7946 0958"),
    ("美国分行来电+852 9986 0130，请转告", "PHONE", "+852 9986 0130"),  # unassigned range
    ("香港电话+852 9123 4567", "PHONE", "+852 9123 4567"),
    ("新加坡同事 +65 6123 4567 找您", "PHONE", "+65 6123 4567"),
    ("总部电话+86 10 6552 9988", "LANDLINE", "+86 10 6552 9988"),
    ("手机+86 138 1234 5678", "PHONE", "+86 138 1234 5678"),  # still cn_mobile's span
    (f"Diners card {DINERS_14} lost", "CREDIT_CARD", DINERS_14),
    (f"JCB {JCB_15} blocked", "CREDIT_CARD", JCB_15),
    (f"old JCB {JCB_15_1800}", "CREDIT_CARD", JCB_15_1800),
    ("Diners 3056 930902 5904 ok", "CREDIT_CARD", "3056 930902 5904"),
    ("JCB 3530 1113 3330 0000 ok", "CREDIT_CARD", "3530 1113 3330 0000"),
    (f"Maestro {MAESTRO_12}", "CREDIT_CARD", MAESTRO_12),
    (f"My card {MAESTRO_0604} is expiring", "CREDIT_CARD", MAESTRO_0604),
    (f"Mir {MIR_16}", "CREDIT_CARD", MIR_16),
    (f"Visa {VISA_19}", "CREDIT_CARD", VISA_19),
    ("transfer from GB82WEST12345698765432 to", "IBAN", "GB82WEST12345698765432"),
    ("IBAN: GB82 WEST 1234 5698 7654 32.", "IBAN", "GB82 WEST 1234 5698 7654 32"),
    ("汇款至DE89370400440532013000，谢谢", "IBAN", "DE89370400440532013000"),
    ("IBAN FR1420041010050500013M02606", "IBAN", "FR1420041010050500013M02606"),
]


@pytest.mark.parametrize(("text", "entity", "value"), POSITIVES)
def test_international_values_are_found_with_their_exact_span(
    analyzer: Analyzer, text: str, entity: str, value: str
) -> None:
    found = [(f.entity_type, text[f.start : f.end]) for f in analyzer.analyze(text)]
    assert (entity, value) in found, found


NEGATIVES = [
    "Order 4126233079 shipped on Monday",  # a valid US number after "order"
    "invoice 412-623-3079 paid",
    "订单号2024051812345已于2024-05-18 12:30:45发货",
    "系统于2024-05-18 12:30完成升级",
    "at +86 2024-05-18 12:30",  # a valid Guangzhou number's digits, grouped as a date
    "Ticket 9309888111 was closed",  # a valid US number, bare, no word about calling
    "wrote 8722418943 bytes",
    "Build 1.2.3.4567 released",
    "时间戳1716010245对应的日志",
    "the value 2614597755 was logged",  # unassigned prefix, no word about calling
    "amount 1234567.89 settled",
    "手机12812345678",  # a mistyped mainland mobile is not a US number with a trunk 1
    "电话1381234567，请回电",  # a digit short: a near-miss at most, never a phone
    "IBAN GB82 WEST 1234 5698 7654 33",  # fails mod 97
    "ref GB82WEST1234569876543",  # too short for GB
    "老身份证110105491231002号码",  # 15 digits starting with 1: no UATP rule
    "卡号3056 930902 5905",  # Diners-shaped, fails Luhn
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_look_alikes_are_not_phones_cards_or_ibans(analyzer: Analyzer, text: str) -> None:
    found = [
        (f.entity_type, text[f.start : f.end])
        for f in analyzer.analyze(text)
        if f.entity_type in {"PHONE", "CREDIT_CARD", "BANK_CARD", "IBAN"}
    ]
    assert found == []


@pytest.mark.parametrize(
    ("digits", "brand"),
    [
        ("378282246310005", "amex"),
        (DINERS_14, "diners"),
        (JCB_15, "jcb"),
        ("3530111333300000", "jcb"),
        ("5555555555554444", "mastercard"),
        ("2221000000000009", "mastercard"),
        ("6011111111111117", "discover"),
        ("6222021234567890128", "unionpay"),
        ("4111111111111", "visa"),
        ("411111111111", None),  # Visa issues 13, 16 and 19 digits
        ("1234567890123456", None),
    ],
)
def test_card_brands_are_told_by_iin_and_length(digits: str, brand: str | None) -> None:
    assert card_brand(digits) == brand


def test_iban_check_is_mod_97_with_the_country_length() -> None:
    assert iban_valid("GB82WEST12345698765432")
    assert not iban_valid("GB82WEST12345698765431")
    assert not iban_valid("XX82WEST12345698765432")


def test_phone_regions_decide_national_numbers() -> None:
    text = "mobile 07911 123456"  # a UK mobile; 0791 is also Nanchang's area code
    us = Analyzer(RecognizerRegistry.with_rules())
    gb = Analyzer(RecognizerRegistry.with_rules(phone_regions=["US", "GB"]))
    assert [f.entity_type for f in us.analyze(text)] == []
    assert [(f.entity_type, text[f.start : f.end]) for f in gb.analyze(text)] == [
        ("PHONE", "07911 123456")
    ]


def test_an_unknown_phone_region_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match="XX"):
        RecognizerRegistry.with_rules(phone_regions=["US", "XX"])


async def test_the_detection_budget_grows_with_the_input() -> None:
    long_text = ("客户王磊的手机13812345678，邮箱wl@example.com。" * 3000)[:100_000]
    # 1 ms alone cannot cover 100 KB; 1 ms plus 60 s per MB can.
    scaled = make_stage(timeout_ms=1, timeout_ms_per_mb=60_000)
    done = await scaled.protect_text(long_text, conversation_id="c")
    assert done.findings["PHONE"] > 1000
    fixed = make_stage(timeout_ms=1, timeout_ms_per_mb=0)
    with pytest.raises(PIIUnavailableError, match="budget for 100000 characters"):
        await fixed.protect_text(long_text, conversation_id="c")
