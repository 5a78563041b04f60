"""Restoring pseudonyms in answers, including streams that split a tag anywhere."""

from __future__ import annotations

import pytest

from luodi.privacy import StreamRestorer

MAPPING = {"<PHONE_1>": "13812345678", "<PERSON_1>": "王磊"}
ANSWER = "好的<PERSON_1>，我们会致电<PHONE_1>。<b>粗体</b> <UNKNOWN_9> a<b"
RESTORED = "好的王磊，我们会致电13812345678。<b>粗体</b> <UNKNOWN_9> a<b"


def test_whole_answer_is_restored_and_unknown_tags_are_kept() -> None:
    assert StreamRestorer(MAPPING).restore(ANSWER) == RESTORED


@pytest.mark.parametrize("cut", range(1, len(ANSWER)))
def test_stream_split_at_any_point_restores_the_same_text(cut: int) -> None:
    r = StreamRestorer(MAPPING)
    out = r.feed(ANSWER[:cut]) + r.feed(ANSWER[cut:]) + r.flush()
    assert out == RESTORED


def test_stream_of_single_characters_never_emits_a_partial_tag() -> None:
    r = StreamRestorer(MAPPING)
    emitted = [r.feed(ch) for ch in ANSWER]
    assert all("<PHONE" not in e and "<PERSON" not in e for e in emitted)
    assert "".join(emitted) + r.flush() == RESTORED


def test_a_split_tag_is_held_back_until_complete() -> None:
    r = StreamRestorer(MAPPING)
    assert r.feed("电话<PHO") == "电话"
    assert r.feed("NE_") == ""
    assert r.feed("1>。") == "13812345678。"


def test_output_masker_sees_whole_sentences_then_tags_are_restored() -> None:
    seen: list[str] = []

    def masker(segment: str) -> tuple[str, dict[str, int]]:
        seen.append(segment)
        return segment.replace("13987654321", "<PHONE>"), {"PHONE": segment.count("139")}

    r = StreamRestorer(MAPPING, masker)
    chunks = ["给<PHONE_1>打", "电话，或139876", "54321。", "结束"]
    out = "".join(r.feed(c) for c in chunks) + r.flush()
    assert out == "给13812345678打电话，或<PHONE>。结束"
    assert seen == ["给<PHONE_1>打电话，或13987654321。", "结束"]
    assert r.output_findings == {"PHONE": 1}
