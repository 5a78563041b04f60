"""Quality heuristics after Gopher (Rae et al. 2021), C4 and FineWeb, plus Chinese ones.

Each rule is a small function of the text returning a reason when it fails. Text is
treated as Chinese (unspaced) when at least a third of its non-space characters are CJK:
word-based rules then give way to character repetition and punctuation ratio.
"""

from __future__ import annotations

import importlib
import itertools
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from luodi.errors import ConfigError
from luodi.pipeline.spec import QualitySpec
from luodi.pipeline.stage import Batch, Outcome, Rejection

__all__ = ["Quality", "quality_failure"]

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_ZH_PUNCT = re.compile(r"[，。！？；：、“”‘’（）《》【】…—,.!?;:]")
_SPACE = re.compile(r"\s")
_DIGIT = re.compile(r"\d")
_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
_BULLETS = ("-", "*", "•", "●", "·", "‣", "○")

Rule = Callable[[str, QualitySpec], str | None]


def is_chinese(text: str) -> bool:
    dense = _dense_len(text)
    return dense > 0 and len(_CJK.findall(text)) * 3 >= dense


def _length(text: str, spec: QualitySpec) -> str | None:
    if len(text) < spec.min_chars:
        return f"too_short: {len(text)} < {spec.min_chars} chars"
    if len(text) > spec.max_chars:
        return f"too_long: {len(text)} > {spec.max_chars} chars"
    return None


def _words(text: str, spec: QualitySpec) -> str | None:
    words = _WORD.findall(text)
    if len(words) < spec.min_words:
        return f"too_few_words: {len(words)} < {spec.min_words}"
    mean = sum(map(len, words)) / len(words)
    if not spec.min_mean_word_length <= mean <= spec.max_mean_word_length:
        return f"mean_word_length: {mean:.1f}"
    stops = sum(1 for w in words if w.lower() in _STOP_WORDS)
    if stops < spec.min_stop_words:
        return f"stop_words: {stops} < {spec.min_stop_words}"
    symbols = text.count("#") + text.count("…") + text.count("...")
    if symbols / len(words) > spec.max_symbol_ratio:
        return f"symbol_ratio: {symbols / len(words):.2f}"
    return None


def _dense_len(text: str) -> int:
    """Characters other than whitespace (regex counting: a Python loop is 10x slower)."""
    return len(text) - len(_SPACE.findall(text))


def _digits(text: str, spec: QualitySpec) -> str | None:
    ratio = len(_DIGIT.findall(text)) / max(1, _dense_len(text))
    return f"digit_ratio: {ratio:.2f}" if ratio > spec.max_digit_ratio else None


def _lines(text: str, spec: QualitySpec) -> str | None:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(lines) < 2:
        return None
    dup = len(lines) - len(set(lines))
    if dup / len(lines) > spec.max_duplicate_line_fraction:
        return f"duplicate_lines: {dup}/{len(lines)}"
    bullets = sum(1 for line in lines if line.startswith(_BULLETS))
    if bullets / len(lines) > spec.max_bullet_line_fraction:
        return f"bullet_lines: {bullets}/{len(lines)}"
    ellipses = sum(1 for line in lines if line.endswith(("...", "…")))
    if ellipses / len(lines) > spec.max_ellipsis_line_fraction:
        return f"ellipsis_lines: {ellipses}/{len(lines)}"
    return None


def _top_word_bigram(text: str, spec: QualitySpec) -> str | None:
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 10:
        return None
    grams = Counter(itertools.pairwise(words))
    (a, b), n = grams.most_common(1)[0]
    share = n * (len(a) + len(b)) / max(1, sum(map(len, words)))
    if n > 1 and share > spec.max_top_ngram_fraction:
        return f"top_ngram: {a} {b!s} {share:.2f}"
    return None


def _char_repetition(text: str, spec: QualitySpec) -> str | None:
    """Share of characters covered by 10-character substrings seen more than once."""
    chars = _SPACE.sub("", text)
    n = 10
    if len(chars) < 2 * n:
        return None
    counts = Counter(chars[i : i + n] for i in range(len(chars) - n + 1))
    covered = [False] * len(chars)
    for i in range(len(chars) - n + 1):
        if counts[chars[i : i + n]] > 1:
            covered[i : i + n] = [True] * n
    share = sum(covered) / len(chars)
    return f"char_repetition: {share:.2f}" if share > spec.max_char_repetition else None


def _zh_punctuation(text: str, spec: QualitySpec) -> str | None:
    chars = _dense_len(text)
    ratio = len(_ZH_PUNCT.findall(text)) / max(1, chars)
    if chars >= 50 and ratio < spec.min_zh_punctuation_ratio:
        return f"zh_punctuation_low: {ratio:.3f}"
    if ratio > spec.max_zh_punctuation_ratio:
        return f"zh_punctuation_high: {ratio:.2f}"
    return None


_COMMON: tuple[Rule, ...] = (_length, _digits, _lines)
_ENGLISH: tuple[Rule, ...] = (_words, _top_word_bigram)
_CHINESE: tuple[Rule, ...] = (_char_repetition, _zh_punctuation)


def _wordfreq() -> Any:
    try:
        return importlib.import_module("wordfreq")
    except ImportError as exc:
        raise ConfigError("quality.max_oov_ratio needs the wordfreq extra") from exc


def _oov(text: str, spec: QualitySpec, lang: str) -> str | None:
    """Share of words rarer in ``lang`` than ``oov_min_zipf`` (wordfreq's Zipf scale)."""
    wordfreq = _wordfreq()
    words = [w for w in wordfreq.tokenize(text[:5000], lang) if not w.isdigit()]
    if len(words) < 5 or spec.max_oov_ratio is None:
        return None
    floor = spec.oov_min_zipf
    unknown = sum(1 for w in words if wordfreq.zipf_frequency(w, lang) < floor)
    ratio = unknown / len(words)
    return f"oov_ratio: {ratio:.2f}" if ratio > spec.max_oov_ratio else None


def quality_failure(text: str, spec: QualitySpec) -> str | None:
    """The first failing rule's ``name: value``, or None when the text passes."""
    chinese = is_chinese(text)
    rules = _COMMON + (_CHINESE if chinese else _ENGLISH)
    for rule in rules:
        reason = rule(text, spec)
        if reason is not None:
            return reason
    if spec.max_oov_ratio is not None:
        return _oov(text, spec, "zh" if chinese else "en")
    return None


def _decile(share: float) -> str:
    return f"{min(9, max(0, int(10 * share))) / 10:.1f}"


def histogram_keys(text: str) -> tuple[str, ...]:
    """Summary counters for the report's histograms of the signals the rules read.

    Length (powers of two), digit share and duplicate-line share (deciles) for every
    text; for English the symbol-per-word ratio, for Chinese the punctuation share.
    """
    n = len(text)
    dense = max(1, _dense_len(text))
    keys = [
        f"hist:chars:{1 << max(0, n.bit_length() - 1)}" if n else "hist:chars:0",
        f"hist:digits:{_decile(len(_DIGIT.findall(text)) / dense)}",
    ]
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if len(lines) >= 2:
        keys.append(f"hist:dup_lines:{_decile((len(lines) - len(set(lines))) / len(lines))}")
    if is_chinese(text):
        keys.append(f"hist:zh_punct:{_decile(10 * len(_ZH_PUNCT.findall(text)) / dense)}")
    else:
        words = len(_WORD.findall(text))
        symbols = text.count("#") + text.count("…") + text.count("...")
        if words:
            keys.append(f"hist:symbols:{_decile(10 * symbols / words)}")
    return tuple(keys)


class Quality:
    name = "quality"
    stateful = False

    def __init__(self, spec: QualitySpec) -> None:
        self.spec = spec
        if spec.max_oov_ratio is not None:
            _wordfreq()  # a missing extra fails when the pipeline is built, not mid-run

    def __call__(self, batch: Batch) -> Outcome:
        out = Outcome(kept=[], stats=Counter())
        for record in batch:
            out.stats.update(histogram_keys(record["text"]))
            failure = quality_failure(record["text"], self.spec)
            if failure is None:
                out.kept.append(record)
                continue
            rule, _, detail = failure.partition(": ")
            out.rejected.append(Rejection(record, rule, detail))
        return out
