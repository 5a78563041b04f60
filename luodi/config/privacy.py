"""PII protection settings: detection policies, custom rules and the pseudonym vault."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

__all__ = [
    "BUILTIN_ENTITIES",
    "DEFAULT_ENTITIES",
    "DEFAULT_MAX_CONVERSATIONS",
    "DEFAULT_MAX_ENTRIES_PER_CONVERSATION",
    "CustomRuleSettings",
    "OperatorName",
    "PolicySettings",
    "PrivacySettings",
    "VaultSettings",
]

OperatorName = Literal["mask", "redact", "replace", "hash", "pseudonym"]
"""How a finding is replaced: ``138****5678``, removed, ``<PHONE_1>`` (one-way),
an HMAC digest, or ``<PHONE_1>`` kept in the vault and restored in the answer."""

BUILTIN_ENTITIES: tuple[str, ...] = (
    "ID_CARD",
    "PHONE",
    "LANDLINE",
    "BANK_CARD",
    "CREDIT_CARD",
    "IBAN",
    "EMAIL",
    "IP_ADDRESS",
    "PASSPORT",
    "VEHICLE_PLATE",
    "USCC",
    "US_SSN",
    "PERSON",
    "ADDRESS",
)
"""Entity types the built-in recognizers emit."""

DEFAULT_ENTITIES: tuple[str, ...] = BUILTIN_ENTITIES
"""The entity set a policy protects unless it lists its own (also the residency set)."""

DEFAULT_MAX_CONVERSATIONS = 100_000
"""Live conversations a vault store holds unless ``vault.max_conversations`` says otherwise."""

DEFAULT_MAX_ENTRIES_PER_CONVERSATION = 10_000
"""Pseudonyms one conversation may hold unless ``vault.max_entries_per_conversation`` says
otherwise."""

_ENTITY_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")


class CustomRuleSettings(BaseModel):
    """One regex rule added from config; it becomes a recognizer like the built-in ones."""

    name: str = Field(min_length=1, max_length=32)
    """Entity type the rule emits (upper case, e.g. ``EMPLOYEE_ID``); also its tag name."""

    regex: str = Field(min_length=1)
    """Python regular expression; the whole match is the finding."""

    score: float = Field(default=0.6, ge=0.0, le=1.0)
    """Confidence of a match before context words raise it."""

    validator: Literal["luhn", "cn_id", "uscc"] | None = None
    """Checksum a match must also pass, or ``None`` for none."""

    context: list[str] = Field(default_factory=list)
    """Words that, near a match, raise its score."""

    ignore_case: bool = False
    """Match the regex case-insensitively."""

    @model_validator(mode="after")
    def _check(self) -> CustomRuleSettings:
        if not _ENTITY_NAME.match(self.name):
            raise ValueError(
                f"custom PII rule name {self.name!r} must be upper case letters, digits, '_'"
            )
        try:
            re.compile(self.regex)
        except re.error as exc:
            raise ValueError(f"custom PII rule {self.name!r}: bad regex: {exc}") from exc
        return self


class PolicySettings(BaseModel):
    """What one policy detects and how it replaces each finding."""

    entities: list[str] = Field(default_factory=lambda: list(DEFAULT_ENTITIES))
    """Entity types replaced by this policy."""

    default_operator: OperatorName = "pseudonym"
    """Operator for an entity that ``operators`` does not name."""

    operators: dict[str, OperatorName] = Field(default_factory=dict)
    """Operator per entity type, overriding ``default_operator``."""

    direction: Literal["input", "output", "both"] = "input"
    """Mask what the client sends, what the model emits, or both."""

    block: list[str] = Field(default_factory=list)
    """Entity types whose presence in the input refuses the request (403 ``pii_blocked``)."""

    timeout_ms: float = Field(default=500.0, ge=1.0, le=60_000.0)
    """Detection time budget per request, plus ``timeout_ms_per_mb`` for its size;
    past it the request is refused (503)."""

    timeout_ms_per_mb: float = Field(default=5000.0, ge=0.0, le=600_000.0)
    """Budget added per megabyte (10**6 characters) of text, so a long prompt is not
    refused for being long: the default allows 0.2 MB/s, a fifth of one core's speed."""

    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    """Findings scoring below this are ignored."""

    near_misses: bool | None = None
    """Also protect look-alikes that fail their checksum (an 18-character ID with a wrong
    check digit, a card failing Luhn, a mobile on an unallocated prefix or one digit
    short or long) when a context word names them (身份证, 卡号, 手机…). ``None``: on in
    ``residency`` (text bound off the premises, where a mistyped ID still identifies a
    person), off in other policies (strict checksums, as analytics wants)."""

    mask_keep_start: int = Field(default=3, ge=0, le=32)
    """Characters the ``mask`` operator keeps at the start (``138****5678``)."""

    mask_keep_end: int = Field(default=4, ge=0, le=32)
    """Characters the ``mask`` operator keeps at the end."""

    mask_char: str = Field(default="*", min_length=1, max_length=1)
    """Character the ``mask`` operator writes."""

    @model_validator(mode="after")
    def _operators_name_entities(self) -> PolicySettings:
        stray = sorted(set(self.operators) - set(self.entities))
        if stray:
            raise ValueError(
                f"operators name entities {stray} that are not in entities={self.entities}"
            )
        return self


class VaultSettings(BaseModel):
    """Where reversible pseudonyms live; values are AES-GCM encrypted in every store."""

    store: Literal["memory", "sqlite", "redis"] = "memory"
    """In this process, a SQLite file, or Redis shared by every replica."""

    ttl_seconds: int = Field(default=3600, ge=1, le=30 * 86400)
    """A conversation's pseudonyms are forgotten this long after their last use."""

    key: SecretStr | None = None
    """Base64 of a 32-byte AES key (``LUODI_PRIVACY__VAULT__KEY``)."""

    key_file: Path | None = None
    """File holding the base64 key; used when ``key`` is unset."""

    sqlite_path: Path = Path("luodi-pii-vault.sqlite")
    """SQLite file for ``store: sqlite``."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis server for ``store: redis``."""

    redis_prefix: str = Field(default="luodi:pii", min_length=1)
    """Prefix of every Redis key the vault writes."""

    max_conversations: int = Field(default=DEFAULT_MAX_CONVERSATIONS, ge=1, le=100_000_000)
    """Live conversations (with at least one pseudonym, not yet expired) the store holds;
    a request that would start one more is refused (503 ``pii_vault_full``, audited)
    rather than sent with pseudonyms that could collide. Every request without an
    ``X-Luodi-Conversation`` header is its own conversation, so with the default TTL this
    admits about 28 new conversations a second, sustained."""

    max_entries_per_conversation: int = Field(
        default=DEFAULT_MAX_ENTRIES_PER_CONVERSATION, ge=1, le=10_000_000
    )
    """Distinct values one conversation may pseudonymize; a request that needs one more
    is refused (503 ``pii_vault_full``, audited)."""

    @model_validator(mode="after")
    def _shared_store_needs_key(self) -> VaultSettings:
        if self.store != "memory" and self.key is None and self.key_file is None:
            raise ValueError(
                f"vault store={self.store!r} outlives the process: set key or key_file "
                "(a random per-process key would make stored values unreadable)"
            )
        return self


class PrivacySettings(BaseModel):
    """PII detection and desensitization for every path that carries text."""

    enabled: bool = True
    """Run the PII stage at all."""

    default_policy: str = "default"
    """Policy used when a key or tenant names none."""

    policies: dict[str, PolicySettings] = Field(
        default_factory=lambda: {"default": PolicySettings()}
    )
    """Named policies; keys and tenants refer to them by name."""

    residency: PolicySettings = Field(default_factory=lambda: PolicySettings(direction="input"))
    """Applied on top of a key's policy when text leaves the premises (``force=True``):
    every entity it lists is replaced by a reversible pseudonym, and near-misses are
    protected unless it sets ``near_misses: false``."""

    custom_rules: list[CustomRuleSettings] = Field(default_factory=list)
    """Extra regex recognizers; reloadable without a restart."""

    phone_regions: list[str] = Field(default_factory=lambda: ["US"])
    """Regions (ISO 3166 codes known to libphonenumber) tried, in order, for phone
    numbers written without a country code; ``+``/``00`` numbers are found whatever
    the region and mainland numbers always. Each region adds false-positive risk for
    bare digit runs: list only the ones your traffic carries."""

    hash_secret: SecretStr | None = None
    """HMAC key of the ``hash`` operator; required when a policy uses it."""

    vault: VaultSettings = Field(default_factory=VaultSettings)
    """Pseudonym vault."""

    @field_validator("custom_rules")
    @classmethod
    def _unique_rules(cls, rules: list[CustomRuleSettings]) -> list[CustomRuleSettings]:
        names = [r.name for r in rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"custom PII rules defined twice: {dupes}")
        return rules

    @model_validator(mode="after")
    def _consistent(self) -> PrivacySettings:
        if self.default_policy not in self.policies:
            raise ValueError(
                f"default_policy={self.default_policy!r} is not one of {sorted(self.policies)}"
            )
        known = set(BUILTIN_ENTITIES) | {r.name for r in self.custom_rules}
        everyone = {**self.policies, "residency": self.residency}
        for name, policy in everyone.items():
            unknown = sorted((set(policy.entities) | set(policy.block)) - known)
            if unknown:
                raise ValueError(f"policy {name!r} names unknown entities {unknown}")
            uses_hash = policy.default_operator == "hash" or "hash" in policy.operators.values()
            if uses_hash and self.hash_secret is None:
                raise ValueError(f"policy {name!r} uses the hash operator but hash_secret is unset")
        return self
