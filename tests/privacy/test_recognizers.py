"""Each built-in recognizer on positives, hard negatives and context words."""

from __future__ import annotations

import pytest

from luodi.privacy import Analyzer

POSITIVES = [
    ("身份证号11010519491231002X已登记", "ID_CARD", "11010519491231002X"),
    ("老身份证110105491231002号码", "ID_CARD", "110105491231002"),
    ("手机13812345678", "PHONE", "13812345678"),
    ("请拨打 +86 138 1234 5678 联系", "PHONE", "+86 138 1234 5678"),
    ("电话：139-8765-4321。", "PHONE", "139-8765-4321"),
    ("座机 010-62345678 转人工", "LANDLINE", "010-62345678"),
    ("办公电话(0755)8765 4321", "LANDLINE", "(0755)8765 4321"),
    ("卡号6222 0212 3456 7890 128 请核对", "BANK_CARD", "6222 0212 3456 7890 128"),
    ("card 4111-1111-1111-1111 expires", "CREDIT_CARD", "4111-1111-1111-1111"),
    ("Amex 378282246310005 on file", "CREDIT_CARD", "378282246310005"),
    ("邮箱wang.lei@example.com.cn，", "EMAIL", "wang.lei@example.com.cn"),
    ("登录IP 203.0.113.7 异常", "IP_ADDRESS", "203.0.113.7"),
    ("v6 地址 2001:db8::8a2e:370:7334 已封禁", "IP_ADDRESS", "2001:db8::8a2e:370:7334"),
    ("link-local fe80::1%eth0 up", "IP_ADDRESS", "fe80::1%eth0"),
    ("护照号码E12345678", "PASSPORT", "E12345678"),
    ("车牌京A·12345违停", "VEHICLE_PLATE", "京A·12345"),
    ("新能源车粤BD12345", "VEHICLE_PLATE", "粤BD12345"),
    ("统一社会信用代码91350100M000100Y43", "USCC", "91350100M000100Y43"),
    ("SSN 078-05-1120 on form", "US_SSN", "078-05-1120"),
    ("客户王磊于昨天来电", "PERSON", "王磊"),
    ("联系人：欧阳娜娜", "PERSON", "欧阳娜娜"),
    ("我叫张秀英，想咨询贷款", "PERSON", "张秀英"),
    ("Dear Mr. John Smith, thank you", "PERSON", "John Smith"),
    (
        "寄到广东省深圳市南山区科技园路1号A座 518057",
        "ADDRESS",
        "广东省深圳市南山区科技园路1号A座 518057",
    ),
    ("我住在上海市浦东新区世纪大道100号。", "ADDRESS", "上海市浦东新区世纪大道100号"),
]

HARD_NEGATIVES = [
    "订单号20231105123456789已发货",  # 17 digits
    "交易时间 2023-11-05 12:30:45，流水号 1699158645123",  # timestamps
    "转账金额 13,812.45 元，手续费 0.00 元",  # amounts
    "身份证11010519491231002Y",  # wrong check character
    "身份证110105194912310021",  # wrong check digit
    "版本 1.2.3.4.5 已发布",  # not an IP
    "卡号6222021234567890127无效",  # fails Luhn
    "提高金额上限需要经理审批，由于系统升级明天暂停服务。",  # surname characters in words
    "城市发展很快，上海的天气很好。",  # place names but no address
    "订单号 6222021234567890128 已退款",  # Luhn-valid, but an order number
    "Transaction reference 2023779087703227 was settled",
]


@pytest.mark.parametrize(("text", "entity", "value"), POSITIVES)
def test_personal_data_is_found_with_its_type(
    analyzer: Analyzer, text: str, entity: str, value: str
) -> None:
    found = [(f.entity_type, text[f.start : f.end]) for f in analyzer.analyze(text)]
    assert (entity, value) in found


@pytest.mark.parametrize("text", HARD_NEGATIVES)
def test_look_alikes_are_not_reported(analyzer: Analyzer, text: str) -> None:
    assert analyzer.analyze(text) == []


def test_findings_name_the_rule_that_fired(analyzer: Analyzer) -> None:
    (finding,) = analyzer.analyze("手机13812345678")
    assert finding.recognizer == "cn_mobile:plain"


@pytest.mark.parametrize(
    ("bare", "with_context"),
    [("编号 110105491231002", "身份证 110105491231002"), ("代码 E1234567", "护照 E1234567")],
)
def test_context_words_raise_a_weak_match_above_the_threshold(
    analyzer: Analyzer, bare: str, with_context: str
) -> None:
    assert analyzer.analyze(bare) == []
    assert len(analyzer.analyze(with_context)) == 1


def test_a_card_number_is_not_also_reported_as_a_phone(analyzer: Analyzer) -> None:
    text = "卡号 6222021234567890128"
    assert [f.entity_type for f in analyzer.analyze(text)] == ["BANK_CARD"]


def test_entity_filter_runs_only_the_requested_types(analyzer: Analyzer) -> None:
    text = "王磊 13812345678 a@b.cn"
    found = analyzer.analyze(text, entities=["EMAIL"])
    assert [f.entity_type for f in found] == ["EMAIL"]


def test_an_address_wins_over_surname_like_street_names_inside_it(analyzer: Analyzer) -> None:
    text = "申请人蔡桂珍，现住甘肃省秀珍县锡山赵街P座 366306，电话18111695722"
    found = [(f.entity_type, text[f.start : f.end]) for f in analyzer.analyze(text)]
    assert found == [
        ("PERSON", "蔡桂珍"),
        ("ADDRESS", "甘肃省秀珍县锡山赵街P座 366306"),
        ("PHONE", "18111695722"),
    ]


def test_a_mistyped_resident_id_is_not_taken_for_a_card_or_company_code(
    analyzer: Analyzer,
) -> None:
    assert analyzer.analyze("身份证号410100200002201768校验失败") == []


@pytest.mark.parametrize(
    "text",
    [
        "顾客您好，满99元包邮，偏远地区除外。",  # jieba tags 顾客 a name; 包邮 is newer than it
        "请顾客提供手机号，我们明白您的着急。",
        "这款阳光玉米包邮吗？温馨提示：包退包换。",
        "如需帮助请联系您的专属顾问。",
    ],
)
def test_a_shops_everyday_words_are_not_names(analyzer: Analyzer, text: str) -> None:
    """Masking them would garble every answer and split the prompts the cache shares."""
    assert [text[f.start : f.end] for f in analyzer.analyze(text)] == []


@pytest.mark.parametrize(
    ("text", "name"),
    [("客户高明来电", "高明"), ("我叫鲁迅", "鲁迅"), ("李娜的手机坏了", "李娜")],
)
def test_a_frequent_word_is_still_a_name_beside_a_cue_or_with_a_names_character(
    analyzer: Analyzer, text: str, name: str
) -> None:
    assert [text[f.start : f.end] for f in analyzer.analyze(text)] == [name]
