"""Near-misses: look-alikes that fail their checksum, protected where a context word names
them when the policy asks (by default: text bound off the premises), never otherwise."""

from __future__ import annotations

import pytest

from luodi.config.privacy import PolicySettings, PrivacySettings
from luodi.privacy import Analyzer, PIIStage
from luodi.privacy.policy import Policy

from .conftest import make_stage

# Each: text, entity type, the span a lenient policy protects; strict checksums find none.
NEAR_MISSES = [
    ("身份证号110105194912310021", "ID_CARD", "110105194912310021"),  # wrong check digit
    ("身份证号410100200002201768校验失败", "ID_CARD", "410100200002201768"),
    ("证件号码 11010519490230002X", "ID_CARD", "11010519490230002X"),  # 30 February
    ("ID number 110105194912310021 on file", "ID_CARD", "110105194912310021"),
    ("卡号6222021234567890127无效", "BANK_CARD", "6222021234567890127"),  # fails Luhn
    ("银行卡 6222 0212 3456 7890 127 请核对", "BANK_CARD", "6222 0212 3456 7890 127"),
    ("信用卡 4111 1111 1111 1112 已冻结", "CREDIT_CARD", "4111 1111 1111 1112"),
    ("card 5500-0000-0000-0005 expired", "CREDIT_CARD", "5500-0000-0000-0005"),
    ("手机12812345678", "PHONE", "12812345678"),  # unallocated prefix 12x
    ("手机号 15412345678", "PHONE", "15412345678"),  # unallocated prefix 154
    ("电话1381234567，请回电", "PHONE", "1381234567"),  # one digit short
    ("联系电话 138123456789", "PHONE", "138123456789"),  # one digit too many
    ("mobile 120-1234-5678", "PHONE", "120-1234-5678"),
]

# Look-alikes that stay unprotected in both modes: no word names them, a negative
# context word marks them as something else, or they belong to no near-miss rule.
NOT_NEAR_MISSES = [
    "编码110105194912310021已作废",  # ID-shaped, but nothing says it is an ID
    "订单号 6222021234567890127 已退款",  # negative context
    "流水号 12812345678",  # negative context
    "序列 12812345678",  # no context word
    "时间戳 1700000000 秒",
    "卡号110105194912310021",  # an ID-shaped number is the ID rule's, not the card's
    "身份证号11010519491231",  # too short for any rule
    "手机 1381234",  # seven digits: not a mobile look-alike
    "统一社会信用代码91350100M000100Y44",  # company codes keep strict checksums
]

# Valid values: found in both modes, never flagged as near-misses.
VALID = [
    ("身份证号11010519491231002X", "ID_CARD", "11010519491231002X"),
    ("卡号6222021234567890128", "BANK_CARD", "6222021234567890128"),
    ("card 4111-1111-1111-1111", "CREDIT_CARD", "4111-1111-1111-1111"),
    ("手机13812345678", "PHONE", "13812345678"),
    ("电话 139-8765-4321", "PHONE", "139-8765-4321"),
]


def spans(analyzer: Analyzer, text: str, *, near_misses: bool) -> list[tuple[str, str, bool]]:
    return [
        (f.entity_type, text[f.start : f.end], f.near_miss)
        for f in analyzer.analyze(text, near_misses=near_misses)
    ]


@pytest.mark.parametrize(("text", "entity", "value"), NEAR_MISSES)
def test_a_named_look_alike_is_found_only_when_near_misses_are_asked_for(
    analyzer: Analyzer, text: str, entity: str, value: str
) -> None:
    assert spans(analyzer, text, near_misses=True) == [(entity, value, True)]
    assert spans(analyzer, text, near_misses=False) == []


@pytest.mark.parametrize("text", NOT_NEAR_MISSES)
def test_an_unnamed_or_foreign_look_alike_is_never_found(analyzer: Analyzer, text: str) -> None:
    assert spans(analyzer, text, near_misses=True) == []
    assert spans(analyzer, text, near_misses=False) == []


@pytest.mark.parametrize(("text", "entity", "value"), VALID)
def test_a_valid_value_is_found_in_both_modes_and_not_flagged(
    analyzer: Analyzer, text: str, entity: str, value: str
) -> None:
    assert spans(analyzer, text, near_misses=True) == [(entity, value, False)]
    assert spans(analyzer, text, near_misses=False) == [(entity, value, False)]


def test_a_near_miss_ranks_below_a_valid_finding_it_overlaps(analyzer: Analyzer) -> None:
    found = analyzer.analyze("身份证号11010519491231002X", near_misses=True)
    assert [(f.entity_type, f.near_miss) for f in found] == [("ID_CARD", False)]
    near = analyzer.analyze("身份证号110105194912310021", near_misses=True)[0]
    assert 0.5 <= near.score < found[0].score
    assert near.to_dict()["near_miss"] is True
    assert "near_miss" not in found[0].to_dict()


@pytest.mark.parametrize(
    ("residency", "policy", "force", "expected"),
    [
        (PolicySettings(), PolicySettings(), False, False),  # on premises: strict
        (PolicySettings(), PolicySettings(), True, True),  # bound off-premises: lenient
        # A residency section written without the field still defaults to lenient.
        (PolicySettings(entities=["ID_CARD", "PHONE"]), PolicySettings(), True, True),
        (PolicySettings(near_misses=False), PolicySettings(), True, False),
        (PolicySettings(near_misses=False), PolicySettings(near_misses=True), True, True),
        (PolicySettings(), PolicySettings(near_misses=True), False, True),
    ],
)
def test_near_misses_default_to_on_for_cloud_bound_text_and_off_otherwise(
    residency: PolicySettings, policy: PolicySettings, force: bool, expected: bool
) -> None:
    stage = PIIStage.from_settings(
        PrivacySettings(policies={"default": policy}, residency=residency)
    )
    assert stage.policy(None, force=force).near_misses is expected


def test_a_policy_resolves_near_misses_from_its_own_default() -> None:
    unset = PolicySettings()
    assert Policy.from_settings("p", unset).near_misses is False
    assert Policy.from_settings("p", unset, near_misses_default=True).near_misses is True
    explicit = PolicySettings(near_misses=False)
    assert Policy.from_settings("p", explicit, near_misses_default=True).near_misses is False


async def test_a_mistyped_id_bound_for_the_cloud_is_pseudonymized_and_restored() -> None:
    stage = make_stage()
    text = "身份证号110105194912310021，请核实"
    cloud = await stage.protect_text(text, policy=None, conversation_id="c", force=True)
    assert cloud.text == "身份证号<ID_CARD_1>，请核实"
    assert cloud.findings == {"ID_CARD": 1}
    assert cloud.restore("已核实<ID_CARD_1>") == "已核实110105194912310021"
    local = await stage.protect_text(text, policy=None, conversation_id="d")
    assert local.text == text
    assert local.findings == {}


async def test_the_analysis_api_keeps_strict_checksums_unless_the_policy_asks() -> None:
    strict = make_stage()
    assert await strict.analyze("卡号6222021234567890127无效") == []
    lenient = make_stage(near_misses=True)
    (found,) = await lenient.analyze("卡号6222021234567890127无效")
    assert (found.entity_type, found.near_miss) == ("BANK_CARD", True)
