"""The audit chain's key: HMAC of records, the head, anchors and checkpoints.

The key is kept outside the database (``security.audit.key``: an environment
variable, a file or a KMS command, as for model encryption). Separate subkeys are
derived for each use, so the same 32 bytes may also serve as the model key without
one use helping to forge the other. ``key_id`` names the key without revealing it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from luodi.config.security import AuditSettings
from luodi.errors import ConfigError, ModelLoadError
from luodi.security.crypto.key_source import KeySource

__all__ = ["ChainKey"]


def _derive(master: bytes, label: str) -> bytes:
    return hmac.new(master, b"luodi-audit/" + label.encode(), hashlib.sha256).digest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class ChainKey:
    """A loaded audit key and the MACs made with it."""

    def __init__(self, master: bytes) -> None:
        self._records = hmac.new(_derive(master, "records"), digestmod=hashlib.sha256)
        self._meta = _derive(master, "meta")
        self.key_id = _derive(master, "key-id").hex()[:16]
        """Public name of the key, stored beside what it signs (16 hex characters)."""

    @classmethod
    def from_settings(cls, settings: AuditSettings, *, strict: bool = False) -> ChainKey | None:
        """The configured key, or None when ``security.audit.key`` names no source.

        Raises:
            ConfigError: The source is configured but yields no valid key.
        """
        source = KeySource.from_settings(settings.key, strict=strict, purpose="audit")
        if not source.configured:
            return None
        try:
            return cls(source.load())
        except ModelLoadError as exc:
            raise ConfigError(f"security.audit.key: {exc.message}") from exc

    def record_mac(self, payload: bytes) -> str:
        """The keyed hash of one record's canonical payload."""
        mac = self._records.copy()
        mac.update(payload)
        return mac.hexdigest()

    def mac(self, kind: str, fields: Mapping[str, Any]) -> str:
        """A MAC over named fields, bound to ``kind`` (head, purge, anchor, checkpoint)."""
        payload = _canonical([kind, self.key_id, dict(fields)])
        return hmac.new(self._meta, payload, hashlib.sha256).hexdigest()

    def check(self, kind: str, fields: Mapping[str, Any], mac: str | None) -> bool:
        """True if ``mac`` is this key's MAC of ``fields`` (constant-time compare)."""
        return mac is not None and hmac.compare_digest(self.mac(kind, fields), mac)
