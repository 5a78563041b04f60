"""PII errors, as subclasses of the luodi tree (see ``luodi/errors.py``)."""

from __future__ import annotations

from luodi.errors import PermissionDeniedError, ServiceUnavailableError

__all__ = ["PIIBlockedError", "PIIUnavailableError"]


class PIIBlockedError(PermissionDeniedError):
    """The input holds an entity type the policy blocks (403, code ``pii_blocked``).

    The message names the entity types only, never the values.
    """

    default_code = "pii_blocked"

    def __init__(self, entity_types: list[str], *, policy: str) -> None:
        super().__init__(
            f"request refused by PII policy {policy!r}: it contains {', '.join(entity_types)}"
        )
        self.entity_types = entity_types


class PIIUnavailableError(ServiceUnavailableError):
    """PII detection failed or ran out of time: the request is refused, never passed
    through unmasked (503, code ``pii_unavailable``)."""

    default_code = "pii_unavailable"
