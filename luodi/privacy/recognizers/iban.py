"""International bank account numbers: country length and the ISO 13616 mod-97 check."""

from __future__ import annotations

from luodi.privacy.recognizer import Pattern, PatternRecognizer

__all__ = ["IBAN_LENGTHS", "IbanRecognizer", "iban_valid"]

_REGISTRY = (
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 "
    "DE22 DJ27 DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 "
    "GT28 HN28 HR21 HU28 IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 "
    "LU20 LV21 LY25 MC27 MD24 ME22 MK19 MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 "
    "PL28 PS29 PT25 QA29 RO24 RS22 RU33 SA24 SC31 SD18 SE24 SI19 SK24 SM27 SO23 ST25 "
    "SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30"
)
IBAN_LENGTHS: dict[str, int] = {e[:2]: int(e[2:]) for e in _REGISTRY.split(" ")}
"""ISO 13616 registry (SWIFT): country code -> IBAN length."""


_EDGE_L = r"(?<![0-9A-Za-z])"
_EDGE_R = r"(?![0-9A-Za-z])"


def iban_valid(value: str) -> bool:
    """Known country, its length, and mod 97 of the rearranged number equal to 1."""
    v = "".join(value.split()).upper()
    if IBAN_LENGTHS.get(v[:2]) != len(v) or not v[2:4].isdigit() or not v.isalnum():
        return False
    # Country and check digits move to the end; letters count as 10..35.
    numeric = "".join(str(int(c, 36)) for c in v[4:] + v[:4])
    return int(numeric) % 97 == 1


class IbanRecognizer(PatternRecognizer):
    """``GB82WEST12345698765432`` or grouped in fours as printed
    (``GB82 WEST 1234 5698 7654 32``)."""

    name = "iban"
    entity_type = "IBAN"
    patterns = (
        Pattern("compact", _EDGE_L + r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}" + _EDGE_R, 0.85),
        Pattern(
            "grouped",
            _EDGE_L + r"[A-Z]{2}\d{2}(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?" + _EDGE_R,
            0.85,
        ),
    )
    context = ("iban", "account", "bank", "transfer", "账户", "账号", "汇款", "转账")

    def validate(self, value: str) -> bool:
        return iban_valid(value)
