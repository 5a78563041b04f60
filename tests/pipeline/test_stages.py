"""Each stage on small real Chinese and English records."""

from __future__ import annotations

from typing import Any

import pytest

from luodi.cli.pipeline import privacy_scrubber
from luodi.pipeline import PIIResidueError
from luodi.pipeline.spec import (
    ComplianceSpec,
    DedupExactSpec,
    DedupNearSpec,
    LanguageSpec,
    NormalizeSpec,
    PIISpec,
    QualitySpec,
    TermsSpec,
)
from luodi.pipeline.stages import (
    PII,
    Compliance,
    DedupExact,
    DedupNear,
    Language,
    Normalize,
    Quality,
    Terms,
)
from tests.pipeline.conftest import EN, ID_NUMBER, ZH


def recs(*texts: str, **meta: Any) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "text": t, **meta} for i, t in enumerate(texts)]


def pii_stage(**kw: Any) -> PII:
    spec = PIISpec(stage="pii", **kw)
    return PII(spec, privacy_scrubber(None, spec))


# -- normalize ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("ＡＢＣ１２３", "ABC123"),  # full-width forms
        ("价格：１２３元，好吗？（含税）", "价格：123元，好吗？（含税）"),  # zh punctuation kept
        ("hello\u200b  world\x07", "hello world"),  # zero-width space, BEL, space run
        ("第一行\r\n\r\n\r\n第二行\t\t结束", "第一行\n\n第二行 结束"),
    ],
)
def test_normalize_applies_nfkc_and_cleans_whitespace(raw: str, clean: str) -> None:
    out = Normalize(NormalizeSpec(stage="normalize"))(recs(raw))
    assert out.kept[0]["text"] == clean


def test_normalize_can_turn_cjk_punctuation_into_ascii() -> None:
    spec = NormalizeSpec(stage="normalize", keep_cjk_punctuation=False)
    out = Normalize(spec)(recs("好吗？是的，１２３。"))
    assert out.kept[0]["text"] == "好吗?是的,123。"


def test_normalize_strips_html_boilerplate() -> None:
    html = (
        "<html><head><style>p{}</style></head><body><nav>首页 | 登录</nav>"
        "<p>正文：公园里有很多人。</p><script>track()</script><footer>版权所有</footer></body></html>"
    )
    out = Normalize(NormalizeSpec(stage="normalize", strip_html=True))(recs(html))
    assert out.kept[0]["text"] == "正文：公园里有很多人。"


def test_normalize_rejects_records_left_empty() -> None:
    out = Normalize(NormalizeSpec(stage="normalize"))(recs(" \u200b\n\t"))
    assert [r.reason for r in out.rejected] == ["empty"]


# -- dedup -----------------------------------------------------------------------------


def test_exact_dedup_holds_across_batches_and_keeps_the_first() -> None:
    stage = DedupExact(DedupExactSpec(stage="dedup_exact"))
    first = stage(recs(EN[0], ZH[0]))
    second = stage([{"id": "later", "text": ZH[0]}, {"id": "new", "text": EN[1]}])
    assert len(first.kept) == 2
    assert [r["id"] for r in second.kept] == ["new"]
    assert second.rejected[0].reason == "exact_dup" and "r1" in second.rejected[0].detail


def test_exact_dedup_state_round_trips() -> None:
    a = DedupExact(DedupExactSpec(stage="dedup_exact"))
    a(recs(EN[0]))
    b = DedupExact(DedupExactSpec(stage="dedup_exact"))
    b.load_state(a.state())
    assert b(recs(EN[0])).rejected


@pytest.mark.parametrize(
    ("original", "edited"),
    [
        (ZH[1], ZH[1].replace("四个菜", "五个菜")),
        (EN[0], EN[0].replace("in the spring", "in the early spring")),
    ],
)
def test_near_dedup_drops_a_small_edit(original: str, edited: str) -> None:
    stage = DedupNear(DedupNearSpec(stage="dedup_near", threshold=0.5))
    out = stage([{"id": "a", "text": original}, {"id": "b", "text": edited}])
    assert [r["id"] for r in out.kept] == ["a"]
    assert out.rejected[0].reason == "near_dup"


def test_near_dedup_keeps_different_texts() -> None:
    stage = DedupNear(DedupNearSpec(stage="dedup_near", threshold=0.5))
    assert len(stage(recs(*EN, *ZH)).kept) == 6


# -- quality -----------------------------------------------------------------------------


def test_quality_keeps_ordinary_prose() -> None:
    out = Quality(QualitySpec(stage="quality"))(recs(*EN, *ZH))
    assert len(out.kept) == 6, [r.reason for r in out.rejected]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("太短了。", "too_short"),
        ("哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈哈", "char_repetition"),
        ("点击这里领取优惠点击这里领取优惠点击这里领取优惠点击这里领取优惠", "char_repetition"),
        ("这是一段没有任何标点符号的很长很长的中文文字内容" * 3, "char_repetition"),
        (
            "欢迎光临本店我们提供各种商品服务包括电子产品家用电器服装鞋帽食品饮料日用百货等应有尽有价格实惠欢迎新老顾客前来选购本店地址在市中心交通便利",
            "zh_punctuation_low",
        ),
        ("buy cheap pills online now best price guaranteed fast shipping", "stop_words"),
        ("#sale #deal #cheap #buy #now and the best of the #offers #today #win", "symbol_ratio"),
        ("order 12345 67890 11223 44556 77889 99001 22334 and the of to", "digit_ratio"),
    ],
)
def test_quality_drops_junk_with_the_rule_named(text: str, reason: str) -> None:
    out = Quality(QualitySpec(stage="quality"))(recs(text))
    assert [r.reason for r in out.rejected] == [reason]


def test_quality_counts_length_and_digit_histograms() -> None:
    out = Quality(QualitySpec(stage="quality"))(recs(EN[0], "x" * 100 + "1" * 20))
    assert out.stats["hist:chars:64"] == 2  # 118 and 120 characters
    assert out.stats["hist:digits:0.0"] == 1 and out.stats["hist:digits:0.1"] == 1


def test_quality_oov_rule_drops_gibberish_chinese() -> None:
    pytest.importorskip("wordfreq", reason="the wordfreq extra is not installed")
    spec = QualitySpec(stage="quality", max_oov_ratio=0.3)
    gibberish = "鍪鏊鐢，鑫鍪觞觚。犭彳彡，廴冫亻卩阝刂。氵灬爫罒，疒衤钅，饣纟。"
    keyboard = "asdkj qweoiu zxcmn qwpoe lkjasd mnbzx poiuqw the and of to"
    out = Quality(spec)(recs(ZH[0], EN[0], gibberish, keyboard))
    assert [r["id"] for r in out.kept] == ["r0", "r1"]
    assert [r.reason for r in out.rejected] == ["oov_ratio", "oov_ratio"]


def test_quality_drops_repeated_lines() -> None:
    text = "\n".join(
        [EN[0], "Click here to subscribe", "Click here to subscribe", "Click here to subscribe"]
    )
    out = Quality(QualitySpec(stage="quality"))(recs(text))
    assert out.rejected[0].reason == "duplicate_lines"


# -- language ----------------------------------------------------------------------------


def test_language_tags_and_keeps_chinese_and_english() -> None:
    out = Language(LanguageSpec(stage="language"))(recs(EN[0], ZH[0]))
    assert [r["language"] for r in out.kept] == ["en", "zh"]
    assert out.stats == {"lang:en": 1, "lang:zh": 1}


def test_language_drops_languages_not_allowed() -> None:
    french = "Le fleuve a inondé la vallée au printemps et les paysans ont déplacé leurs bêtes."
    out = Language(LanguageSpec(stage="language", allowed=["zh"]))(recs(french, ZH[1], EN[1]))
    assert [r["id"] for r in out.kept] == ["r1"]
    assert sorted(r.detail.split()[0] for r in out.rejected) == ["en", "fr"]


# -- terms -------------------------------------------------------------------------------


def test_terms_from_list_and_file(tmp_path: Any) -> None:
    words = tmp_path / "terms.txt"
    words.write_text("# one per line\n赌博\n", encoding="utf-8")
    stage = Terms(TermsSpec(stage="terms", terms=["Casino"], files=[words]))
    out = stage(recs("网上赌博害人不浅，请远离。", "Visit the CASINO tonight.", ZH[0]))
    assert [r["id"] for r in out.kept] == ["r2"]
    assert [r.detail for r in out.rejected] == ["赌博", "CASINO"]


# -- pii ---------------------------------------------------------------------------------

WITH_ID = f"我的身份证号是{ID_NUMBER}，手机号13812345678，请帮我查询社保记录。"


def test_pii_redact_leaves_type_tags() -> None:
    out = pii_stage(action="redact")(recs(WITH_ID, EN[0]))
    text = out.kept[0]["text"]
    assert ID_NUMBER not in text and "13812345678" not in text
    assert "<ID_CARD>" in text
    assert out.kept[1]["text"] == EN[0]
    assert out.stats["removed:ID_CARD"] == 1


def test_pii_pseudonymize_numbers_values_within_a_record() -> None:
    out = pii_stage(action="pseudonymize")(recs(WITH_ID))
    assert "<ID_CARD_1>" in out.kept[0]["text"]


def test_pii_drop_rejects_records_with_personal_data() -> None:
    out = pii_stage(action="drop")(recs(WITH_ID, ZH[0]))
    assert [r["id"] for r in out.kept] == ["r1"]
    assert "ID_CARD" in out.rejected[0].detail


def test_residue_is_quarantined_when_the_action_missed_an_id_number() -> None:
    # Redacting phones only leaves the ID number: the residue scan must catch it.
    out = pii_stage(action="redact", entities=["PHONE"])(recs(WITH_ID, ZH[0]))
    assert [r["id"] for r in out.kept] == ["r1"]
    (bad,) = out.rejected
    assert bad.reason == "pii_residue" and bad.detail == "ID_CARD"


def test_residue_stops_the_run_when_policy_says_stop() -> None:
    stage = pii_stage(action="redact", entities=["PHONE"], on_residue="stop")
    with pytest.raises(PIIResidueError, match="ID_CARD"):
        stage(recs(WITH_ID))


# -- compliance --------------------------------------------------------------------------


def test_compliance_checks_licence_consent_retention_residency() -> None:
    spec = ComplianceSpec(
        stage="compliance",
        allowed_licenses=["CC-BY-4.0"],
        consent_field="consent",
        retention_field="retain_until",
        residency_field="region",
        allowed_residency=["CN"],
        today="2026-06-01",
    )
    ok = {"license": "cc-by-4.0", "consent": True, "retain_until": "2027-01-01", "region": "cn"}
    batch = [
        {"id": "ok", "text": ZH[0], **ok},
        {"id": "gpl", "text": ZH[0], **ok, "license": "GPL-3.0"},
        {"id": "noconsent", "text": ZH[0], **ok, "consent": "no"},
        {"id": "expired", "text": ZH[0], **ok, "retain_until": "2026-01-01"},
        {"id": "abroad", "text": ZH[0], **ok, "region": "US"},
    ]
    out = Compliance(spec)(batch)
    assert [r["id"] for r in out.kept] == ["ok"]
    assert [r.reason for r in out.rejected] == ["license", "consent", "retention", "residency"]
    assert out.stats["checked:retention"] == 5
