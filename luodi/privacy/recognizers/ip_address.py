"""IPv4 and IPv6 addresses, validated by the standard library's parser."""

from __future__ import annotations

import ipaddress

from luodi.privacy.recognizer import Pattern, PatternRecognizer

__all__ = ["IpAddressRecognizer"]

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"


class IpAddressRecognizer(PatternRecognizer):
    """Dotted quads (not version strings with more parts) and colon-hex IPv6 forms."""

    name = "ip_address"
    entity_type = "IP_ADDRESS"
    patterns = (
        Pattern("v4", r"(?<![\w.])" + _OCTET + r"(?:\." + _OCTET + r"){3}(?![\w]|\.\d)", 0.7),
        Pattern(
            "v6",
            r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,7}[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{1,4})*"
            r"(?:%\w+)?(?![\w:])|(?<![\w:])::(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{1,4}(?![\w:])",
            0.8,
        ),
    )
    context = ("ip", "地址", "登录", "访问", "host", "server", "address")

    def validate(self, value: str) -> bool:
        try:
            ipaddress.ip_address(value.split("%", 1)[0])
        except ValueError:
            return False
        return True
