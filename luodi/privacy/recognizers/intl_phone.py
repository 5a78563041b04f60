"""Phone numbers outside the mainland formats, checked against libphonenumber's plans.

A cheap regex finds runs of digits and phone punctuation; each run is parsed by
``phonenumbers`` (with a leading ``+`` or ``00`` in any country, otherwise in each
configured region) and kept when the numbering plan allows it:

* a **valid** number (an assigned prefix at a valid length) written with a ``+`` or
  in groups scores 0.7;
* a **possible** one (right length, unassigned prefix) only when written like a phone:
  a ``+`` prefix, an area code in parentheses, separators or an extension, with its
  digit groups where the country's format puts them. It scores 0.55: protected, below
  every checksum-backed match it may overlap;
* a number written as bare digits (valid, or possible in the North American shape:
  area code and exchange starting 2-9) scores 0.45, under the default threshold: ten
  bare digits are as often an order, ticket or byte count, so it counts only next to
  a word about calling (phone, call, fax, message, 电话…).

Where a run is split into groups, the groups must fall on the boundaries of the
number's own format (``412-623-3079`` yes; ``2024-05-18 12`` no), so dates, times and
version strings are not phones; an order number of a possible length is caught by
the negative context (order, 订单号). Mainland mobiles remain ``cn_mobile``'s (same
span, higher score); a mainland fixed line written with ``+86`` is typed LANDLINE.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat

from luodi.errors import ConfigError
from luodi.privacy.finding import Finding
from luodi.privacy.recognizer import CONTEXT_BOOST, has_context

__all__ = ["DEFAULT_PHONE_REGIONS", "IntlPhoneRecognizer"]

DEFAULT_PHONE_REGIONS: tuple[str, ...] = ("US",)
"""Regions tried for numbers written without a country code (``privacy.phone_regions``)."""

VALID_SCORE = 0.7
POSSIBLE_SCORE = 0.55
BARE_SCORE = 0.45

_CANDIDATE = re.compile(
    # The first character alone comes first, so the scan can skip to candidates; the
    # look-behind then checks it is not glued to a word, a sign or another number.
    r"[+(0-9](?<![0-9A-Za-z+\-.].)"
    r"[\d ().\-]{5,24}\d"
    r"(?:[ ]?(?:x|ext\.?|extn\.?|#)[ ]?\d{1,6})?"
    r"(?![0-9A-Za-z])"
)
# A mainland mobile as cn_mobile finds it (bare or 3-4-4, after +86/0086 or not).
_CN_MOBILE = re.compile(
    r"(?:\+|00)?(?:86[ -]?)?1(?:3\d|4[5-9]|5[0-35-9]|6[2567]|7[0-8]|8\d|9[0-35-9])"
    r"(?:\d{8}|([ -])\d{4}\1\d{4}|[ -]\d{4}[ -]\d{4})"
)
_EXTENSION = re.compile(r"[ ]?(?:x|ext\.?|extn\.?|#)[ ]?\d{1,6}$")
_GROUP = re.compile(r"\d+")
_NEGATIVE = ("订单", "流水号", "单号", "交易号", "编号", "order", "tracking", "invoice", "ref")
_CONTEXT = (
    "phone",
    "call",
    "tel",
    "mobile",
    "cell",
    "fax",
    "contact",
    "reach",
    "dial",
    "message",
    "sms",
    "whatsapp",
    "office",
    "desk",
    "answer",
    "电话",
    "手机",
    "联系",
    "致电",
    "来电",
    "号码",
    "微信",
)
_MIN_DIGITS = 7
_MAX_DIGITS = 21  # E.164's 15, an international prefix and a six-digit extension
_MAX_NATIONAL = 14  # digits of a national number with its trunk prefix, extension apart


class IntlPhoneRecognizer:
    """International and national-format phone numbers by numbering plan: ``PHONE``,
    or ``LANDLINE`` for a mainland fixed line written with ``+86``.

    Args:
        regions: ISO 3166 codes tried, in order, for numbers without a country code.

    Raises:
        ConfigError: a region libphonenumber does not know.
    """

    name = "intl_phone"
    entity_types: tuple[str, ...] = ("PHONE", "LANDLINE")

    def __init__(self, regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> None:
        unknown = sorted(set(regions) - phonenumbers.SUPPORTED_REGIONS)
        if unknown:
            raise ConfigError(f"privacy.phone_regions: unknown regions {unknown}")
        self.regions = tuple(regions)

    def find(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        for m in _CANDIDATE.finditer(text):
            raw = m.group()
            digits = sum(c.isdigit() for c in raw)
            if digits < _MIN_DIGITS or digits > _MAX_DIGITS:
                continue
            if not raw.startswith(("+", "00")) and _national_digits(raw) > _MAX_NATIONAL:
                continue  # a card or an ID, not a national phone number
            if _CN_MOBILE.fullmatch(raw):
                continue  # cn_mobile's, on the same span
            if _preceded_by(text, m.start(), _NEGATIVE):
                continue
            cued = has_context(text, m.start(), m.end(), _CONTEXT)
            if not cued and raw.isdigit():
                continue  # bare digits count only next to a calling word: skip the parse
            judged = self._judge(raw)
            if judged is None:
                continue
            entity, score, rule = judged
            if cued:
                score = min(1.0, score + CONTEXT_BOOST)
            found.append(Finding(entity, m.start(), m.end(), score, f"{self.name}:{rule}"))
        return found

    def _judge(self, raw: str) -> tuple[str, float, str] | None:
        """(entity type, score, rule) for a candidate run, or None if it is no phone."""
        ext = _EXTENSION.search(raw)
        main = raw[: ext.start()] if ext else raw
        international = main.startswith(("+", "00"))
        dialled = "+" + main[2:] if main.startswith("00") else main
        formatted = international or ext is not None or len(_GROUP.findall(main)) > 1
        for region in (None,) if international else self.regions:
            try:
                number = phonenumbers.parse(dialled, region)
            except NumberParseException:
                continue
            reason = phonenumbers.is_possible_number_with_reason(number)
            if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
                continue
            if not formatted and main != phonenumbers.national_significant_number(number):
                # Bare digits with a trunk prefix (12812345678): in Chinese text that is
                # a mobile number with a digit wrong, and nobody writes a US one so.
                continue
            valid = phonenumbers.is_valid_number(number)
            if not formatted:
                # Ten bare digits are as often an order, ticket or byte count as a
                # phone: valid or merely North-American-shaped, they need a cue word.
                if valid or (number.country_code == 1 and _plausible(number)):
                    return _entity(number), BARE_SCORE, "bare"
                continue
            grouped = _grouped_as_formatted(main, number)
            if valid and grouped:
                return _entity(number), VALID_SCORE, "valid"
            if grouped and _plausible(number):
                return _entity(number), POSSIBLE_SCORE, "possible"
        return None


_NANP = re.compile(r"[2-9]\d{2}[2-9]\d{6}")


def _plausible(number: PhoneNumber) -> bool:
    """For a possible but unassigned number: in the North American plan, area code and
    exchange still start with 2-9 (the plan's shape, whatever is assigned)."""
    if number.country_code != 1:
        return True
    return _NANP.fullmatch(phonenumbers.national_significant_number(number)) is not None


def _entity(number: PhoneNumber) -> str:
    """LANDLINE for a mainland fixed line (the cn_landline type), else PHONE."""
    if number.country_code == 86 and (
        phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.FIXED_LINE
    ):
        return "LANDLINE"
    return "PHONE"


def _grouped_as_formatted(main: str, number: PhoneNumber) -> bool:
    """Whether the digit groups of ``main`` break only where the number's international
    format breaks (a group may join several of the format's groups, never split one)."""
    groups = _GROUP.findall(main)
    nsn = phonenumbers.national_significant_number(number)
    code = str(number.country_code)
    if main.startswith(("+", "00")):
        first = groups[0][2:] if main.startswith("00") else groups[0]
        if not first.startswith(code):
            return False
        groups = [first[len(code) :], *groups[1:]] if len(first) > len(code) else groups[1:]
    joined = "".join(groups)
    if joined != nsn:
        trunk = joined[: len(joined) - len(nsn)]
        if not joined.endswith(nsn) or len(trunk) > 2:
            return False
        # A national trunk prefix (1 in NANP, 0 in most of Europe) is a group of its own
        # or the head of the first group.
        groups = [g for g in [groups[0][len(trunk) :], *groups[1:]] if g]
    formatted = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    reference = _GROUP.findall(formatted)[1:]  # without the country code
    if len(reference) == 1 and main.startswith(("+", "00")):
        return True  # no format known for an unassigned range; the + says it is a phone
    return _breaks(groups) <= _breaks(reference)


def _breaks(groups: list[str]) -> set[int]:
    """Offsets where one group ends and the next begins."""
    out: set[int] = set()
    at = 0
    for g in groups[:-1]:
        at += len(g)
        out.add(at)
    return out


def _national_digits(raw: str) -> int:
    """Digits of a candidate without its extension."""
    ext = _EXTENSION.search(raw)
    return sum(c.isdigit() for c in (raw[: ext.start()] if ext else raw))


def _preceded_by(text: str, start: int, words: Sequence[str]) -> bool:
    before = text[max(0, start - 12) : start].lower()
    return any(w in before for w in words)
