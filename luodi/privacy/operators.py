"""Operators: what replaces a finding. A Protocol, the built-ins, and a registry by name.

``pseudonym`` is the only reversible one; it needs a per-conversation ``Pseudonymizer``
(the vault) passed in the context. ``replace`` writes the same ``<TYPE_n>`` tags but
forgets the values, so nothing can restore them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from luodi.errors import ConfigError

__all__ = [
    "OPERATORS",
    "OperatorContext",
    "Pseudonymizer",
    "hash_value",
    "mask_value",
    "pseudonym_value",
    "redact_value",
    "replace_value",
    "tag_for",
    "type_tag_value",
]


class Pseudonymizer(Protocol):
    """Gives the same tag for the same value, remembering it for restoration."""

    def pseudonym(self, entity_type: str, value: str) -> str:
        """The tag (``<PHONE_1>``) standing for ``value`` in this conversation."""
        ...


@dataclass
class OperatorContext:
    """What operators may need beyond the value: settings and per-text state."""

    mask_keep_start: int = 3
    mask_keep_end: int = 4
    mask_char: str = "*"
    hash_secret: bytes | None = None
    pseudonymizer: Pseudonymizer | None = None
    tag_numbers: dict[tuple[str, str], str] = field(default_factory=dict)
    """``replace``'s own numbering: (entity, value) -> tag, so repeats share a tag."""


def tag_for(entity_type: str, number: int) -> str:
    """The tag format shared by ``replace`` and ``pseudonym``: ``<PHONE_1>``."""
    return f"<{entity_type}_{number}>"


def mask_value(entity_type: str, value: str, ctx: OperatorContext) -> str:
    """Keep the first and last characters, mask the rest (``138****5678``).

    Short values keep less, so that at least a third is always masked.
    """
    n = len(value)
    keep_start, keep_end = ctx.mask_keep_start, ctx.mask_keep_end
    while keep_start + keep_end > n - max(1, n // 3) and (keep_start or keep_end):
        if keep_start >= keep_end:
            keep_start -= 1
        else:
            keep_end -= 1
    middle = "".join(c if c in " -" else ctx.mask_char for c in value[keep_start : n - keep_end])
    return value[:keep_start] + middle + value[n - keep_end :]


def redact_value(entity_type: str, value: str, ctx: OperatorContext) -> str:
    """Remove the value entirely."""
    return ""


def replace_value(entity_type: str, value: str, ctx: OperatorContext) -> str:
    """A type tag numbered within this text; not restorable."""
    key = (entity_type, value)
    if key not in ctx.tag_numbers:
        same_type = sum(1 for t, _ in ctx.tag_numbers if t == entity_type)
        ctx.tag_numbers[key] = tag_for(entity_type, same_type + 1)
    return ctx.tag_numbers[key]


def hash_value(entity_type: str, value: str, ctx: OperatorContext) -> str:
    """``<PHONE:hmac-sha256 prefix>``: equal values hash equally, only with the secret."""
    if ctx.hash_secret is None:
        raise ConfigError("the hash operator needs privacy.hash_secret")
    digest = hmac.new(ctx.hash_secret, f"{entity_type}\x00{value}".encode(), hashlib.sha256)
    return f"<{entity_type}:{digest.hexdigest()[:16]}>"


def type_tag_value(entity_type: str, value: str, ctx: OperatorContext) -> str:
    """``<PHONE>``: the type alone, unnumbered, so it can never be taken for a
    pseudonym (used when masking model output)."""
    return f"<{entity_type}>"


def pseudonym_value(entity_type: str, value: str, ctx: OperatorContext) -> str:
    """A tag recorded in the conversation's vault, restored in the model's answer."""
    if ctx.pseudonymizer is None:
        raise ConfigError("the pseudonym operator needs a conversation vault")
    return ctx.pseudonymizer.pseudonym(entity_type, value)


Operator = Callable[[str, str, OperatorContext], str]

OPERATORS: dict[str, Operator] = {
    "mask": mask_value,
    "redact": redact_value,
    "replace": replace_value,
    "hash": hash_value,
    "pseudonym": pseudonym_value,
    "type_tag": type_tag_value,
}
"""Operators by the name policies use; add an entry to extend."""
