"""Where the model encryption key comes from: an environment variable, a file, or a KMS.

A key is 32 bytes, given as 64 hex characters or base64 (a key file may also hold
the 32 raw bytes). A KMS command's standard output is read the same way, so any
KMS or Vault client that prints the data key works.
"""

from __future__ import annotations

import base64
import binascii
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from luodi.config.security import ModelKeySettings
from luodi.errors import ConfigError, ModelLoadError

__all__ = ["KEY_BYTES", "KeySource", "parse_key"]

KEY_BYTES = 32


def parse_key(raw: bytes, origin: str) -> bytes:
    """Decode a 256-bit key from hex, base64 or raw bytes.

    Raises:
        ModelLoadError: The material is not a 256-bit key; ``origin`` names its source.
    """
    if len(raw) == KEY_BYTES and not raw.strip().isalnum():
        return raw
    text = raw.strip()
    try:
        if len(text) == 2 * KEY_BYTES:
            return bytes.fromhex(text.decode("ascii"))
        decoded = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ModelLoadError(f"model key from {origin} is neither hex nor base64") from exc
    if len(decoded) != KEY_BYTES:
        raise ModelLoadError(
            f"model key from {origin} is {len(decoded)} bytes; AES-256 needs {KEY_BYTES}"
        )
    return decoded


@dataclass(frozen=True, slots=True)
class KeySource:
    """One of: an environment variable name, a key file, or a KMS command."""

    env: str | None = None
    file: Path | None = None
    kms_command: str | None = None

    @classmethod
    def from_settings(cls, settings: ModelKeySettings) -> KeySource:
        """The source configured under ``security.model_key``."""
        return cls(env=settings.env, file=settings.file, kms_command=settings.kms_command)

    @property
    def configured(self) -> bool:
        """True if any source is set."""
        return any(v is not None for v in (self.env, self.file, self.kms_command))

    def load(self) -> bytes:
        """Fetch the key.

        Raises:
            ConfigError: No source is configured.
            ModelLoadError: The source is missing, fails, or holds no valid key.
        """
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise ModelLoadError(f"model key variable ${self.env} is not set")
            return parse_key(value.encode(), f"${self.env}")
        if self.file is not None:
            try:
                raw = Path(self.file).expanduser().read_bytes()
            except OSError as exc:
                raise ModelLoadError(f"cannot read model key file {self.file}: {exc}") from exc
            return parse_key(raw, str(self.file))
        if self.kms_command is not None:
            try:
                done = subprocess.run(
                    shlex.split(self.kms_command), capture_output=True, timeout=30, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ModelLoadError(f"model key command failed to run: {exc}") from exc
            if done.returncode != 0:
                raise ModelLoadError(
                    f"model key command exited {done.returncode}: "
                    f"{done.stderr.decode(errors='replace').strip()[:200]}"
                )
            return parse_key(done.stdout, "the KMS command")
        raise ConfigError("no model key source: set security.model_key.env, .file or .kms_command")
