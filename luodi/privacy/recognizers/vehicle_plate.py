"""Mainland vehicle licence plates, including new-energy (eight-character) plates."""

from __future__ import annotations

from luodi.privacy.recognizer import Pattern, PatternRecognizer

__all__ = ["VehiclePlateRecognizer"]

_PROVINCE = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_LETTER = "A-HJ-NP-Z"  # plates never use I or O


class VehiclePlateRecognizer(PatternRecognizer):
    """Province character, issuing-office letter, optional dot, five or six characters."""

    name = "vehicle_plate"
    entity_type = "VEHICLE_PLATE"
    patterns = (
        Pattern(
            "plate",
            rf"[{_PROVINCE}][{_LETTER}][·•.\s]?"
            rf"(?:[DF][{_LETTER}0-9]\d{{4}}|\d{{5}}[DF]|[{_LETTER}0-9]{{4}}[{_LETTER}0-9挂学警港澳])"
            r"(?![0-9A-Za-z])",
            0.75,
        ),
    )
    context = ("车牌", "牌照", "车辆", "号牌", "plate")
