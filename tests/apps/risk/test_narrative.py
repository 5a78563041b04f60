"""The renderer: golden narratives in English and Chinese, stable ids, determinism."""

from __future__ import annotations

from luodi.apps.risk.case import parse_cases
from luodi.apps.risk.features import feature_table
from luodi.apps.risk.narrative import render
from tests.apps.risk.cases import card_testing_case

GOLDEN_EN = """\
[events.24h.count] last 24 h: 6 events (6 card_payment), total ¥24.00
[events.24h.small_count] last 24 h: 6 under ¥10
[events.24h.cnp_count] last 24 h: 6 card-not-present
[events.24h.new_devices] last 24 h: 3 new devices (3 in all); first new device seen 5.1 h \
before the last event
[events.24h.locations] last 24 h: 2 locations
[events.24h.new_counterparties] last 24 h: 6 new counterparties
[events.all.count] history: 8 events over 18.84 days
[account_age_days] account_age_days: 412
[kyc_level] kyc_level: basic"""

GOLDEN_ZH = """\
[events.24h.count] 近24小时：6笔事件（card_payment 6笔），合计¥24.00
[events.24h.small_count] 近24小时：6笔低于¥10
[events.24h.cnp_count] 近24小时：6笔无卡交易
[events.24h.new_devices] 近24小时：3台新设备（共3台），最早一台出现于最后事件前5.1小时
[events.24h.locations] 近24小时：2个地点
[events.24h.new_counterparties] 近24小时：6个新交易对手
[events.all.count] 历史：共8笔事件，跨18.84天
[account_age_days] account_age_days：412
[kyc_level] kyc_level：basic"""


def _golden_case():
    return parse_cases([card_testing_case()])[0]


def test_english_narrative_matches_the_golden_text() -> None:
    assert render(_golden_case(), "en").text == GOLDEN_EN


def test_chinese_narrative_matches_the_golden_text() -> None:
    assert render(_golden_case(), "zh").text == GOLDEN_ZH


def test_both_languages_show_the_same_feature_ids() -> None:
    case = _golden_case()
    assert render(case, "en").feature_ids == render(case, "zh").feature_ids


def test_every_id_the_narrative_shows_is_a_feature_of_the_case() -> None:
    case = _golden_case()
    assert set(render(case).feature_ids) <= set(feature_table(case))


def test_event_order_does_not_change_the_narrative() -> None:
    raw = card_testing_case()
    shuffled = {**raw, "events": list(reversed(raw["events"]))}
    [a, b] = parse_cases([raw, {**shuffled, "id": "golden-2"}])
    assert render(a).text == render(b).text


def test_a_case_without_events_renders_its_features_alone() -> None:
    [case] = parse_cases([{"id": "x", "features": {"income": 31767.14, "student": "No"}}])
    assert render(case).text == "[income] income: 31767.14\n[student] student: No"


def test_a_seven_day_line_appears_where_it_differs_from_the_last_day() -> None:
    raw = card_testing_case()
    raw["events"].append(
        {"ts": "2026-02-27T10:00:00Z", "type": "transfer", "amount": 50, "currency": "CNY"}
    )
    [case] = parse_cases([raw])
    ids = render(case).feature_ids
    assert "events.7d.count" in ids and "events.24h.count" in ids
    assert "events.7d.small_count" not in ids  # the same 6 as in the last 24 h
