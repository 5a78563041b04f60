"""Where a key comes from: an environment variable, a file, or a KMS.

Model encryption and the audit chain's HMAC take their keys from the same kinds of
source. A key is 32 bytes, given as 64 hex characters or base64 (a key file may also
hold the 32 raw bytes). A KMS command's standard output is read the same way, so any
KMS or Vault client that prints the data key works.

A key file that its group or others may read or write is loaded with a warning, or
refused when ``strict_permissions`` is set (``security.require_strict_key_permissions``).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import shlex
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from luodi.config.security import ModelKeySettings
from luodi.errors import ConfigError, ModelLoadError

__all__ = ["KEY_BYTES", "KeySource", "check_key_file_mode", "parse_key"]

_log = logging.getLogger(__name__)
KEY_BYTES = 32


def check_key_file_mode(path: Path, *, strict: bool, what: str = "model") -> None:
    """Warn about (or refuse) a key file its group or others may read or write.

    Raises:
        ModelLoadError: ``strict`` and the file's mode grants group/other access.
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {what} key file {path}: {exc}") from exc
    if mode & 0o077 == 0:
        return
    message = (
        f"{what} key file {path} has mode {mode:#o}: its group or others may read it; "
        f"chmod 600 {path}"
    )
    if strict:
        raise ModelLoadError(message + " (security.require_strict_key_permissions is on)")
    _log.warning("%s", message)


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
    """One of: an environment variable name, a key file, or a KMS command.

    Attributes:
        strict_permissions: Refuse a key file readable by group or others.
        purpose: What the key is for, in error messages (``model``, ``audit``).
    """

    env: str | None = None
    file: Path | None = None
    kms_command: str | None = None
    strict_permissions: bool = False
    purpose: str = "model"

    @classmethod
    def from_settings(
        cls, settings: ModelKeySettings, *, strict: bool = False, purpose: str = "model"
    ) -> KeySource:
        """The source configured in a key section (``security.model_key``, ``.audit.key``)."""
        return cls(
            env=settings.env,
            file=settings.file,
            kms_command=settings.kms_command,
            strict_permissions=strict,
            purpose=purpose,
        )

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
        what = self.purpose
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise ModelLoadError(f"{what} key variable ${self.env} is not set")
            return parse_key(value.encode(), f"${self.env}")
        if self.file is not None:
            path = Path(self.file).expanduser()
            check_key_file_mode(path, strict=self.strict_permissions, what=what)
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise ModelLoadError(f"cannot read {what} key file {self.file}: {exc}") from exc
            return parse_key(raw, str(self.file))
        if self.kms_command is not None:
            try:
                done = subprocess.run(
                    shlex.split(self.kms_command), capture_output=True, timeout=30, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise ModelLoadError(f"{what} key command failed to run: {exc}") from exc
            if done.returncode != 0:
                raise ModelLoadError(
                    f"{what} key command exited {done.returncode}: "
                    f"{done.stderr.decode(errors='replace').strip()[:200]}"
                )
            return parse_key(done.stdout, "the KMS command")
        raise ConfigError(f"no {what} key source: set its .env, .file or .kms_command")
