"""Model encryption at rest: AES-256-GCM chunked files, key sources, memfd loading."""

from luodi.security.crypto.container import MAGIC, is_encrypted
from luodi.security.crypto.files import (
    ModelOpener,
    decrypt_file,
    encrypt_file,
    is_encrypted_file,
    model_opener,
    open_model_for_loading,
)
from luodi.security.crypto.key_source import KeySource, check_key_file_mode, parse_key
from luodi.security.crypto.process import is_dumpable, make_non_dumpable

__all__ = [
    "MAGIC",
    "KeySource",
    "ModelOpener",
    "check_key_file_mode",
    "decrypt_file",
    "encrypt_file",
    "is_dumpable",
    "is_encrypted",
    "is_encrypted_file",
    "make_non_dumpable",
    "model_opener",
    "open_model_for_loading",
    "parse_key",
]
