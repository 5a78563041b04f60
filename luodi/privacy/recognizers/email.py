"""E-mail addresses."""

from __future__ import annotations

import re

from luodi.privacy.recognizer import Pattern, PatternRecognizer

__all__ = ["EmailRecognizer"]


class EmailRecognizer(PatternRecognizer):
    """Local part, ``@``, a dotted domain ending in an alphabetic TLD."""

    name = "email"
    entity_type = "EMAIL"
    patterns = (
        Pattern(
            "address",
            r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
            r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])",
            0.9,
            re.ASCII,
        ),
    )
    context = ("邮箱", "邮件", "电邮", "email", "e-mail", "mail")
