"""Operators and the anonymizer: what replaces a finding."""

from __future__ import annotations

import pytest

from luodi.errors import ConfigError
from luodi.privacy import Analyzer, Anonymizer, OperatorContext

TEXT = "手机13812345678，邮箱a.b@example.com，再说一次13812345678"


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        ("mask", "手机138****5678，邮箱a.b********.com，再说一次138****5678"),
        ("redact", "手机，邮箱，再说一次"),
        ("replace", "手机<PHONE_1>，邮箱<EMAIL_1>，再说一次<PHONE_1>"),
    ],
)
def test_operator_output(analyzer: Analyzer, operator: str, expected: str) -> None:
    done = Anonymizer().anonymize(TEXT, analyzer.analyze(TEXT), operator)
    assert done.text == expected
    assert done.counts() == {"PHONE": 2, "EMAIL": 1}


def test_mask_keeps_as_many_characters_as_configured(analyzer: Analyzer) -> None:
    ctx = OperatorContext(mask_keep_start=0, mask_keep_end=2, mask_char="#")
    done = Anonymizer(ctx).anonymize("13812345678", analyzer.analyze("13812345678"), "mask")
    assert done.text == "#########78"


def test_keyed_hash_is_stable_per_secret_and_differs_across_secrets(analyzer: Analyzer) -> None:
    findings = analyzer.analyze(TEXT)
    a1 = Anonymizer(OperatorContext(hash_secret=b"k1")).anonymize(TEXT, findings, "hash").text
    a2 = Anonymizer(OperatorContext(hash_secret=b"k1")).anonymize(TEXT, findings, "hash").text
    b = Anonymizer(OperatorContext(hash_secret=b"k2")).anonymize(TEXT, findings, "hash").text
    assert a1 == a2 != b
    assert "13812345678" not in a1


def test_hash_without_a_secret_is_a_config_error(analyzer: Analyzer) -> None:
    with pytest.raises(ConfigError, match="hash_secret"):
        Anonymizer().anonymize(TEXT, analyzer.analyze(TEXT), "hash")


def test_operators_per_entity_leave_unlisted_types_alone(analyzer: Analyzer) -> None:
    done = Anonymizer().anonymize(TEXT, analyzer.analyze(TEXT), {"EMAIL": "redact"})
    assert done.text == "手机13812345678，邮箱，再说一次13812345678"


def test_replacement_offsets_point_into_the_new_text(analyzer: Analyzer) -> None:
    done = Anonymizer().anonymize(TEXT, analyzer.analyze(TEXT), "replace")
    for item in done.items:
        assert done.text[item.start : item.end] == item.new_text
