"""Model encryption at rest: AES-256-GCM chunked files, key sources, memfd loading."""

from luodi.security.crypto.container import MAGIC, is_encrypted
from luodi.security.crypto.files import (
    decrypt_file,
    encrypt_file,
    is_encrypted_file,
    open_model_for_loading,
)
from luodi.security.crypto.key_source import KeySource, parse_key

__all__ = [
    "MAGIC",
    "KeySource",
    "decrypt_file",
    "encrypt_file",
    "is_encrypted",
    "is_encrypted_file",
    "open_model_for_loading",
    "parse_key",
]
