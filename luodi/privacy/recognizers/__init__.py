"""Built-in recognizers, one file per kind of personal data."""

from __future__ import annotations

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
from luodi.privacy.recognizers.ip_address import IpAddressRecognizer
from luodi.privacy.recognizers.passport import PassportRecognizer
from luodi.privacy.recognizers.us_ssn import UsSsnRecognizer
from luodi.privacy.recognizers.uscc import UsccRecognizer
from luodi.privacy.recognizers.vehicle_plate import VehiclePlateRecognizer

__all__ = [
    "BankCardRecognizer",
    "CnAddressRecognizer",
    "CnIdCardRecognizer",
    "CnLandlineRecognizer",
    "CnMobileRecognizer",
    "CnPersonNameRecognizer",
    "CreditCardRecognizer",
    "EmailRecognizer",
    "EnPersonNameRecognizer",
    "IpAddressRecognizer",
    "PassportRecognizer",
    "UsSsnRecognizer",
    "UsccRecognizer",
    "VehiclePlateRecognizer",
    "builtin_recognizers",
]


def builtin_recognizers() -> list[Recognizer]:
    """A fresh instance of every built-in recognizer."""
    return [
        CnIdCardRecognizer(),
        CnMobileRecognizer(),
        CnLandlineRecognizer(),
        BankCardRecognizer(),
        CreditCardRecognizer(),
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
