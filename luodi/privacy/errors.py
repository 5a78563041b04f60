"""PII errors, as subclasses of the luodi tree (see ``luodi/errors.py``)."""

from __future__ import annotations

from luodi.errors import PermissionDeniedError, ServiceUnavailableError

__all__ = ["PIIBlockedError", "PIIUnavailableError", "PIIVaultFullError"]


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


class PIIVaultFullError(PIIUnavailableError):
    """The pseudonym vault is at a configured bound: the request is refused rather than
    given pseudonyms that could collide with another conversation's (503, code
    ``pii_vault_full``).

    The message names the bound and its setting, never a value or a conversation.

    Attributes:
        bound: ``"max_conversations"`` or ``"max_entries_per_conversation"``.
        limit: the configured value that was reached.
    """

    default_code = "pii_vault_full"

    def __init__(self, bound: str, limit: int, *, retry_after: float | None = None) -> None:
        what = "live conversations" if bound == "max_conversations" else "values in a conversation"
        super().__init__(
            f"pii: vault full: {limit} {what} (privacy.vault.{bound}); "
            "request refused rather than sent with pseudonyms that could collide",
            retry_after=retry_after,
        )
        self.bound = bound
        self.limit = limit
