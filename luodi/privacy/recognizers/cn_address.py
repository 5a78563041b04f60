"""Chinese postal addresses: province, city, district, street, number, building, postcode.

A match must start at a province (from the list) or at a place name ending in 市, and
hold at least two components, so a lone ``北京`` or ``城市`` is not an address.
"""

from __future__ import annotations

import re

from luodi.privacy.finding import Finding
from luodi.privacy.recognizer import CONTEXT_BOOST, has_context

__all__ = ["CnAddressRecognizer"]

_PROVINCES = (
    "北京市|天津市|上海市|重庆市|北京|天津|上海|重庆|"
    "河北省|山西省|辽宁省|吉林省|黑龙江省|江苏省|浙江省|安徽省|福建省|江西省|山东省|河南省|"
    "湖北省|湖南省|广东省|海南省|四川省|贵州省|云南省|陕西省|甘肃省|青海省|台湾省|"
    "内蒙古自治区|广西壮族自治区|西藏自治区|宁夏回族自治区|新疆维吾尔自治区|"
    "香港特别行政区|澳门特别行政区"
)
# Han characters that do not begin or continue a place name in running text.
_NOT_PLACE = "的在住于是到从我你他她们和与及为址了往去来把被请"
_H = r"[\u4e00-\u9fff]"
_FIRST = rf"(?:(?![{_NOT_PLACE}]){_H})"  # a city name when no province precedes it
_CITY = rf"{_H}{{1,5}}?(?:市|自治州|地区|盟)"
_CITY_FIRST = rf"{_FIRST}{{1,5}}?(?:市|自治州|地区|盟)"
_DISTRICT = rf"{_H}{{1,5}}?(?:区|县|旗)"
_TOWN = rf"{_H}{{1,5}}?(?:镇|乡|街道)(?![路街道巷弄])"
_STREET = rf"(?:(?:{_H}|[0-9]){{1,10}}?(?:大道|大街|胡同|路|街|道|巷|弄|里))+"
_NUMBER = r"(?:[0-9一二三四五六七八九十百零]{1,5}(?:号|弄))?"
_UNIT = r"(?:[A-Za-z0-9一二三四五六七八九十]{1,4}(?:号楼|座|栋|幢|楼|单元|层|室|号))*"
_POSTCODE = r"(?:\s?\d{6}(?!\d))?"
_ADDRESS = re.compile(
    rf"(?P<province>{_PROVINCES})?(?(province)(?P<city>{_CITY})?|(?P<city2>{_CITY_FIRST}))"
    rf"(?P<district>{_DISTRICT}|{_H}{{2}}(?={_STREET}))?(?P<town>{_TOWN})?"
    rf"(?P<street>{_STREET}{_NUMBER}{_UNIT})?(?P<postcode>{_POSTCODE})"
)
_CONTEXT = ("地址", "住址", "住在", "位于", "寄到", "收货", "户籍", "居住", "address")


class CnAddressRecognizer:
    """Finds Chinese addresses; entity ``ADDRESS``."""

    name = "cn_address"
    entity_types = ("ADDRESS",)

    def find(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        for m in _ADDRESS.finditer(text):
            parts = [g for g in ("province", "city", "city2", "district", "town", "street") if m[g]]
            if len(parts) < 2:
                continue
            score = 0.6 if len(parts) == 2 and not m["street"] else 0.75
            if has_context(text, m.start(), m.end(), _CONTEXT):
                score = min(1.0, score + CONTEXT_BOOST)
            found.append(Finding("ADDRESS", m.start(), m.end(), score, f"{self.name}:{len(parts)}"))
        return found
