"""Built-in recognizers, one file per kind of personal data."""

from __future__ import annotations

from collections.abc import Sequence

from luodi.privacy.recognizer import Recognizer
from luodi.privacy.recognizers.bank_card import BankCardRecognizer
from luodi.privacy.recognizers.cn_address import CnAddressRecognizer
from luodi.privacy.recognizers.cn_id_card import CnIdCardRecognizer
from luodi.privacy.recognizers.cn_landline import CnLandlineRecognizer
from luodi.privacy.recognizers.cn_mobile import CnMobileRecognizer
from luodi.privacy.recognizers.cn_person_name import CnPersonNameRecognizer
from luodi.privacy.recognizers.credit_card import CreditCardRecognizer
from luodi.privacy.recognizers.email import EmailRecognizer
from luodi.privacy.recognizers.en_person_name import EnPersonNameRecognizer
from luodi.privacy.recognizers.iban import IbanRecognizer
from luodi.privacy.recognizers.intl_phone import DEFAULT_PHONE_REGIONS, IntlPhoneRecognizer
from luodi.privacy.recognizers.ip_address import IpAddressRecognizer
from luodi.privacy.recognizers.passport import PassportRecognizer
from luodi.privacy.recognizers.us_ssn import UsSsnRecognizer
from luodi.privacy.recognizers.uscc import UsccRecognizer
from luodi.privacy.recognizers.vehicle_plate import VehiclePlateRecognizer

__all__ = [
    "DEFAULT_PHONE_REGIONS",
    "BankCardRecognizer",
    "CnAddressRecognizer",
    "CnIdCardRecognizer",
    "CnLandlineRecognizer",
    "CnMobileRecognizer",
    "CnPersonNameRecognizer",
    "CreditCardRecognizer",
    "EmailRecognizer",
    "EnPersonNameRecognizer",
    "IbanRecognizer",
    "IntlPhoneRecognizer",
    "IpAddressRecognizer",
    "PassportRecognizer",
    "UsSsnRecognizer",
    "UsccRecognizer",
    "VehiclePlateRecognizer",
    "builtin_recognizers",
]


def builtin_recognizers(
    phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
) -> list[Recognizer]:
    """A fresh instance of every built-in recognizer.

    Args:
        phone_regions: regions tried for phone numbers written without a country code
            (mainland numbers are always found, by ``cn_mobile`` and ``cn_landline``).
    """
    return [
        CnIdCardRecognizer(),
        CnMobileRecognizer(),
        CnLandlineRecognizer(),
        IntlPhoneRecognizer(phone_regions),
        BankCardRecognizer(),
        CreditCardRecognizer(),
        IbanRecognizer(),
        EmailRecognizer(),
        IpAddressRecognizer(),
        PassportRecognizer(),
        VehiclePlateRecognizer(),
        UsccRecognizer(),
        UsSsnRecognizer(),
        CnPersonNameRecognizer(),
        EnPersonNameRecognizer(),
        CnAddressRecognizer(),
    ]
