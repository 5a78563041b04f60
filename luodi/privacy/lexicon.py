"""jieba's dictionary and its person-name model, loaded once and shared read-only.

The name recognizer needs two things jieba ships: the word list with POS tags (to tell
``高兴`` the word from ``高`` the surname) and the HMM emission probabilities of the
``nr`` (person name) tag (to tell a given-name character from an ordinary one).
Running ``jieba.posseg`` over whole texts gives the same signals at about 20 KB/s;
reading them directly keeps detection above 1 MB/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

__all__ = ["PLAIN_FREQ", "Lexicon", "load_lexicon"]

PLAIN_FREQ = 30
"""Frequency from which a dictionary word is taken as an ordinary word."""


@dataclass(frozen=True, slots=True)
class Lexicon:
    """Word frequencies and tags, and per-character name likelihood ratios.

    Attributes:
        words: word -> (frequency, POS tag) from jieba's ``dict.txt``.
        name_end: log-ratio of a character ending a name vs. appearing anywhere.
        name_mid: log-ratio of a character in the middle of a name vs. anywhere.
    """

    words: dict[str, tuple[int, str]]
    name_end: dict[str, float]
    name_mid: dict[str, float]
    plain: frozenset[str]
    """Words seen at least ``PLAIN_FREQ`` times and not tagged as names (高兴, 金额)."""
    names: frozenset[str]
    """Words jieba tags as person names (noisy: it includes 申请人)."""

    def freq(self, word: str) -> int:
        """Dictionary frequency of ``word``; 0 when absent."""
        entry = self.words.get(word)
        return entry[0] if entry else 0

    def is_name(self, word: str) -> bool:
        """Whether jieba tags ``word`` as a person name."""
        entry = self.words.get(word)
        return entry is not None and entry[1].startswith("nr")


@cache
def load_lexicon() -> Lexicon:
    """Parse jieba's dictionary (about a second, once per process)."""
    import jieba
    from jieba.posseg.prob_emit import P as emit

    words: dict[str, tuple[int, str]] = {}
    char_count: dict[str, int] = {}
    with open(jieba.get_dict_file().name, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) < 2:
                continue
            word, freq = parts[0], int(parts[1])
            words[word] = (freq, parts[2] if len(parts) > 2 else "")
            for ch in word:
                char_count[ch] = char_count.get(ch, 0) + freq
    total = sum(char_count.values())
    floor = math.log(1.0 / total)
    # Given-name characters of the dictionary's own person names (tag nr*), counted
    # by position: a second estimate for characters the HMM has never seen.
    given_end: dict[str, int] = {}
    given_mid: dict[str, int] = {}
    for word, (_, tag) in words.items():
        if tag.startswith("nr") and len(word) in (2, 3):
            given_end[word[-1]] = given_end.get(word[-1], 0) + 1
            if len(word) == 3:
                given_mid[word[1]] = given_mid.get(word[1], 0) + 1

    def general(ch: str) -> float:
        return math.log(char_count[ch] / total) if ch in char_count else floor

    def ratios(state: str, counted: dict[str, int]) -> dict[str, float]:
        out: dict[str, float] = {}
        for ch, logp in emit[(state, "nr")].items():
            out[ch] = logp - general(ch)
        n = sum(counted.values())
        for ch, count in counted.items():
            if count >= 3:
                out[ch] = max(out.get(ch, -99.0), math.log(count / n) - general(ch))
        return out

    return Lexicon(
        words=words,
        name_end=ratios("E", given_end),
        name_mid=ratios("M", given_mid),
        plain=frozenset(
            w for w, (f, t) in words.items() if f >= PLAIN_FREQ and not t.startswith("nr")
        ),
        names=frozenset(w for w, (_, t) in words.items() if t.startswith("nr")),
    )
