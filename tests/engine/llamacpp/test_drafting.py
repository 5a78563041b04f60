"""Prompt-lookup drafts: what the n-gram index proposes, and when it proposes nothing."""

from __future__ import annotations

import pytest

from luodi.engine.llamacpp.drafting import PromptLookup


def test_the_tokens_after_an_earlier_occurrence_of_the_tail_are_proposed() -> None:
    lookup = PromptLookup(2, 4)
    prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    # The output so far ends with 3 4: the prompt continued 3 4 with 5 6 7.
    assert lookup.propose(prompt, [20, 3, 4], 3) == [5, 6, 7]


def test_the_longest_matching_tail_wins() -> None:
    lookup = PromptLookup(1, 3)
    #          x  a  b  c  y  b  c  z
    prompt = [10, 1, 2, 3, 11, 2, 3, 12]
    # Tail "1 2 3": only its full match says 11 follows; "2 3" alone last said 12.
    assert lookup.propose(prompt, [1, 2, 3], 1) == [11]
    assert PromptLookup(1, 2).propose(prompt, [1, 2, 3], 1) == [12]


def test_no_draft_without_a_match_or_below_the_shortest_ngram() -> None:
    lookup = PromptLookup(2, 4)
    assert lookup.propose([1, 2, 3], [4, 5], 4) == []
    assert PromptLookup(2, 2).propose([1], [], 4) == []
    assert PromptLookup(2, 4).propose([1, 2, 1, 2], [], 0) == []


def test_the_index_grows_with_the_output() -> None:
    lookup = PromptLookup(2, 2)
    assert lookup.propose([5, 6], [7, 8], 2) == []
    # 7 8 now occurred with 9 after it: a later "7 8" tail proposes 9 and what followed.
    assert lookup.propose([5, 6], [7, 8, 9, 7, 8], 2) == [9, 7]


def test_the_draft_is_cut_at_the_end_of_the_context() -> None:
    lookup = PromptLookup(2, 2)
    assert lookup.propose([1, 2, 3], [1, 2], 8) == [3, 1, 2]


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="ngram_min"):
        PromptLookup(3, 2)
