"""Chunks respect Chinese sentence ends, headings, lists, tables and the token budget."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from luodi.knowledge import Block, Chunker, split_sentences


def char_tokens(texts: Sequence[str]) -> list[int]:
    """One token per non-space character: easy to reason about in tests."""
    return [sum(not c.isspace() for c in t) for t in texts]


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        (
            "开户需要身份证。营业时间九点！能转账吗？可以；",
            ["开户需要身份证。", "营业时间九点！", "能转账吗？", "可以；"],
        ),
        ("Rates are 1.5% now. Fees apply! Why?", ["Rates are 1.5% now.", "Fees apply!", "Why?"]),
    ],
)
def test_sentences_end_at_chinese_and_latin_punctuation(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


def test_chinese_sentences_are_never_cut_and_chunks_fit_the_budget() -> None:
    text = "".join(f"第{i}条规定客户需要遵守银行的相关制度。" for i in range(30))
    chunks = Chunker(char_tokens, size=60, overlap=0).chunk([Block("text", text)])
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.n_tokens <= 60
        assert chunk.text.endswith("。")


def test_overlap_repeats_trailing_sentences() -> None:
    text = "".join(f"句子{i:02d}。" for i in range(20))
    chunks = Chunker(char_tokens, size=30, overlap=10).chunk([Block("text", text)])
    assert len(chunks) > 2
    for first, second in itertools.pairwise(chunks):
        # 5 tokens per sentence, overlap 10: the last two sentences start the next chunk.
        assert split_sentences(first.text)[-2:] == split_sentences(second.text)[:2]


def test_list_and_table_are_kept_whole_and_heading_labels_chunks() -> None:
    blocks = [
        Block("heading", "转账限额", 2),
        Block("text", "限额如下。"),
        Block("list", "- 手机银行五万元\n- 网银二十万元"),
        Block("table", "币种 | 通知\nUSD | 无"),
    ]
    chunks = Chunker(char_tokens, size=40, overlap=0).chunk(blocks)
    assert any("- 手机银行五万元\n- 网银二十万元" in c.text for c in chunks)
    assert any("币种 | 通知\nUSD | 无" in c.text for c in chunks)
    assert all(c.heading == "转账限额" for c in chunks)


def test_each_row_is_its_own_chunk_with_positions_in_order() -> None:
    blocks = [Block("row", f"q: 问题{i}; a: 答案{i}") for i in range(5)]
    chunks = Chunker(char_tokens, size=200, overlap=20).chunk(blocks)
    assert [c.text for c in chunks] == [b.text for b in blocks]
    assert [c.position for c in chunks] == list(range(5))


def test_oversized_sentence_is_split_to_fit() -> None:
    chunks = Chunker(char_tokens, size=16, overlap=0).chunk([Block("text", "长" * 100)])
    assert all(c.n_tokens <= 16 for c in chunks)
    assert "".join(c.text for c in chunks) == "长" * 100


def test_overlap_not_smaller_than_size_is_refused() -> None:
    with pytest.raises(ValueError, match="overlap=10 must be smaller than size=10"):
        Chunker(char_tokens, size=10, overlap=10)
