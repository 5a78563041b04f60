"""The pseudonym vault: value <-> tag per conversation, encrypted at rest, with a TTL.

Stores never see a plaintext value: lookups go by an HMAC digest of the value and the
value itself is sealed with AES-GCM (the conversation id and entity type as associated
data, so a sealed value cannot be replayed into another conversation).

Nor do stores see a client's conversation id: ``PseudonymVault.scope`` turns (owner,
conversation) into an opaque key, so a conversation belongs to the key that opened it
and another key naming the same id opens a conversation of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from luodi.config.privacy import VaultSettings
from luodi.errors import ConfigError
from luodi.privacy.errors import PIIUnavailableError
from luodi.privacy.vault_stores import build_vault_store

__all__ = ["PseudonymOwner", "PseudonymVault", "VaultCipher", "VaultStore", "build_vault"]


class PseudonymOwner(Protocol):
    """Who pseudonyms are issued to: the gateway's ``Principal`` is one.

    Only the tenant and the API key id bind a conversation; the user name is not used,
    so two keys of one user do not read each other's pseudonyms either.
    """

    @property
    def tenant(self) -> str: ...

    @property
    def key_id(self) -> str: ...


class VaultStore(Protocol):
    """Where sealed values live. ``assign`` must be atomic per conversation, and bounded:
    it raises ``PIIVaultFullError`` rather than admit a conversation or a value past the
    store's limits."""

    async def assign(
        self, conversation: str, entity_type: str, digest: str, sealed: bytes, ttl: int
    ) -> str:
        """The tag for ``digest`` in ``conversation``: the existing one, or a new
        ``<TYPE_n>`` (n = one more than the type's count) stored with ``sealed``.
        Refreshes the conversation's TTL.

        Raises:
            PIIVaultFullError: a new conversation past ``max_conversations``, or a new
                value past ``max_entries_per_conversation``; nothing is stored.
            PIIUnavailableError: the store cannot be reached.
        """
        ...

    async def entries(self, conversation: str) -> dict[str, tuple[str, bytes]]:
        """tag -> (entity type, sealed value) for a live conversation; {} once expired."""
        ...

    async def forget(self, conversation: str) -> None:
        """Drop a conversation now."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class VaultCipher:
    """AES-256-GCM sealing and HMAC-SHA256 digests derived from one 32-byte key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError(f"the PII vault key must be 32 bytes, got {len(key)}")
        self._aead = AESGCM(hashlib.sha256(b"luodi-pii-seal\x00" + key).digest())
        self._mac_key = hashlib.sha256(b"luodi-pii-digest\x00" + key).digest()
        self._scope_key = hashlib.sha256(b"luodi-pii-scope\x00" + key).digest()

    @classmethod
    def from_settings(cls, settings: VaultSettings) -> VaultCipher:
        """Key from ``key`` (base64), else ``key_file``, else random for this process."""
        if settings.key is not None:
            return cls(_b64(settings.key.get_secret_value(), "privacy.vault.key"))
        if settings.key_file is not None:
            path = Path(settings.key_file)
            try:
                raw = path.read_text(encoding="ascii").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read PII vault key file {path}: {exc}") from exc
            return cls(_b64(raw, str(path)))
        return cls(os.urandom(32))

    def scope(self, owner: PseudonymOwner | None, conversation: str) -> str:
        """Store key of one owner's conversation: ``s:`` + 32 hex digits of an HMAC.

        The parts are JSON-encoded before hashing, so no choice of ids makes two
        (owner, conversation) pairs meet; ``owner=None`` is a scope of its own.
        """
        who = None if owner is None else [owner.tenant, owner.key_id]
        msg = json.dumps([who, conversation], ensure_ascii=False).encode()
        return "s:" + hmac.new(self._scope_key, msg, hashlib.sha256).hexdigest()[:32]

    def digest(self, conversation: str, entity_type: str, value: str) -> str:
        """Lookup key of a value: equal only for the same conversation, type and value."""
        msg = f"{conversation}\x00{entity_type}\x00{value}".encode()
        return hmac.new(self._mac_key, msg, hashlib.sha256).hexdigest()

    def seal(self, conversation: str, entity_type: str, value: str) -> bytes:
        """Nonce + ciphertext of ``value``."""
        nonce = os.urandom(12)
        aad = f"{conversation}\x00{entity_type}".encode()
        return nonce + self._aead.encrypt(nonce, value.encode(), aad)

    def open(self, conversation: str, entity_type: str, sealed: bytes) -> str:
        """The value sealed by ``seal``; raises ``cryptography``'s InvalidTag if tampered."""
        aad = f"{conversation}\x00{entity_type}".encode()
        return self._aead.decrypt(sealed[:12], sealed[12:], aad).decode()


def _b64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise ConfigError(f"PII vault key in {where} is not valid base64") from exc


class PseudonymVault:
    """Consistent, reversible pseudonyms per conversation.

    Two conversations never share a map: the conversation id is part of every digest,
    every sealed value's associated data and every store key. Callers holding a client's
    conversation id pass ``scope(owner, conversation_id)`` as the conversation, so the
    map is also the owner's alone (see ``VaultCipher.scope``).
    """

    def __init__(self, store: VaultStore, cipher: VaultCipher, ttl_seconds: int) -> None:
        self.store = store
        self.cipher = cipher
        self.ttl_seconds = ttl_seconds

    def scope(self, owner: PseudonymOwner | None, conversation: str) -> str:
        """The conversation key for ``owner``'s ``conversation`` (``VaultCipher.scope``)."""
        return self.cipher.scope(owner, conversation)

    async def assign(
        self, conversation: str, values: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """(entity type, value) -> tag for each pair, creating tags as needed."""
        out: dict[tuple[str, str], str] = {}
        for entity_type, value in values:
            if (entity_type, value) in out:
                continue
            digest = self.cipher.digest(conversation, entity_type, value)
            sealed = self.cipher.seal(conversation, entity_type, value)
            tag = await self.store.assign(
                conversation, entity_type, digest, sealed, self.ttl_seconds
            )
            out[(entity_type, value)] = tag
        return out

    async def mapping(self, conversation: str) -> dict[str, str]:
        """tag -> original value for every pseudonym of a live conversation."""
        entries = await self.store.entries(conversation)
        try:
            return {
                tag: self.cipher.open(conversation, entity_type, sealed)
                for tag, (entity_type, sealed) in entries.items()
            }
        except InvalidTag as exc:
            raise PIIUnavailableError(
                "pii: vault entries cannot be decrypted (wrong key or tampered store)"
            ) from exc

    async def forget(self, conversation: str) -> None:
        """Drop a conversation's pseudonyms now."""
        await self.store.forget(conversation)

    async def close(self) -> None:
        """Release the store's connections."""
        await self.store.close()


def build_vault(settings: VaultSettings) -> PseudonymVault:
    """The vault the settings describe (store, bounds, key and TTL).

    Raises:
        ConfigError: no key where the store needs one, or an unknown store.
    """
    cipher = VaultCipher.from_settings(settings)
    return PseudonymVault(build_vault_store(settings), cipher, settings.ttl_seconds)
