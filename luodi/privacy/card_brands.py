"""Payment card brands by issuer identification number (IIN) and length.

A card number is a brand's when its leading digits fall in one of the brand's IIN
ranges and its length is one the brand issues; the Luhn check is separate
(``checksums.luhn_valid``). The table follows the ranges networks publish (ISO/IEC
7812 IINs as listed by the card networks' own documentation and Wikipedia's "Payment
card number"), most specific first, so a co-branded range takes its narrower brand.

Left out on purpose: UATP (airline cards, any 15 digits starting with 1), because the
pre-1999 15-digit Chinese resident ID starts with 1 too and a tenth of them pass Luhn.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BRANDS", "UNIONPAY", "CardBrand", "card_brand"]

UNIONPAY = "unionpay"
"""UnionPay (62, 81): the debit cards issued in China, typed ``BANK_CARD``."""


@dataclass(frozen=True, slots=True)
class CardBrand:
    """One network: inclusive IIN ranges (equal-length digit strings) and card lengths."""

    name: str
    ranges: tuple[tuple[str, str], ...]
    lengths: frozenset[int]

    def issued(self, digits: str) -> bool:
        """Whether ``digits`` (digits only) lies in one of the ranges at a valid length."""
        if len(digits) not in self.lengths:
            return False
        return any(lo <= digits[: len(lo)] <= hi for lo, hi in self.ranges)


def _brand(name: str, ranges: str, lengths: str) -> CardBrand:
    """``ranges`` like ``"34 37 2221-2720"``; ``lengths`` like ``"16-19"`` or ``"13 16 19"``."""
    spans = tuple((r.split("-")[0], r.split("-")[-1]) for r in ranges.split())
    sizes: set[int] = set()
    for part in lengths.split():
        lo, _, hi = part.partition("-")
        sizes.update(range(int(lo), int(hi or lo) + 1))
    return CardBrand(name, spans, frozenset(sizes))


BRANDS: tuple[CardBrand, ...] = (
    _brand("amex", "34 37", "15"),
    _brand("jcb", "1800 2131", "15"),  # JCB's legacy 15-digit ranges
    _brand("jcb", "3528-3589", "16-19"),
    _brand("diners", "300-305 3095 36 38-39", "14-19"),
    _brand("mir", "2200-2204", "16-19"),
    _brand("borica", "2205", "16"),
    _brand("mastercard", "2221-2720 51-55", "16"),
    _brand("visa_electron", "4026 417500 4508 4844 4913 4917", "16"),
    _brand("dankort", "4571 5019", "16"),
    _brand("visa", "4", "13 16 19"),
    _brand("verve", "506099-506198 507865-507964 650002-650027", "16 18 19"),
    _brand("maestro", "0604 5018 5020 5038 56-58 6304 6390 6759 6761-6763", "12-19"),
    _brand("discover", "6011 644-649 65", "16-19"),
    _brand("rupay", "508 353 356 60", "16"),
    _brand("interpayment", "636", "16-19"),
    _brand("instapayment", "637-639", "16"),
    _brand("troy", "9792", "16"),
    _brand(UNIONPAY, "62 81", "16-19"),
)
"""Every brand, most specific range first."""


def card_brand(digits: str) -> str | None:
    """The brand whose IIN ranges and lengths admit ``digits`` (digits only), else None."""
    for brand in BRANDS:
        if brand.issued(digits):
            return brand.name
    return None
