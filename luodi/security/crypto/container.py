"""The encrypted model file format: AES-256-GCM in authenticated chunks.

Layout::

    header  = magic "LUODIENC" | version u8 | chunk_size u32 | nonce_prefix 8B
              | plaintext_size u64 | key_check 16B
    chunk i = AES-GCM(key, nonce = nonce_prefix | i u32,
                      aad = header | i u32 | last u8) of chunk_size plaintext bytes

Every chunk is authenticated with the header and its own index, and the last one is
marked, so an edited, reordered, dropped or appended chunk fails. ``key_check`` (a
hash of key and header) tells a wrong key from a tampered file. Memory is one chunk.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from luodi.errors import ModelLoadError

__all__ = ["DEFAULT_CHUNK", "MAGIC", "decrypt_stream", "encrypt_stream", "is_encrypted"]

MAGIC = b"LUODIENC"
_VERSION = 1
_FIXED = struct.Struct(">8sBI8sQ")
_HEADER_LEN = _FIXED.size + 16
_TAG = 16
DEFAULT_CHUNK = 4 * 1024 * 1024
_MAX_CHUNK = 256 * 1024 * 1024


def is_encrypted(head: bytes) -> bool:
    """True if a file's first bytes carry the encrypted-model magic."""
    return head.startswith(MAGIC)


def _key_check(key: bytes, fixed: bytes) -> bytes:
    return hashlib.sha256(b"luodi-model-key-check\x00" + key + fixed).digest()[:16]


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + struct.pack(">IB", index, int(last))


def encrypt_stream(
    src: BinaryIO, dst: BinaryIO, key: bytes, size: int, *, chunk_size: int = DEFAULT_CHUNK
) -> None:
    """Encrypt ``size`` bytes from ``src`` into ``dst``."""
    if not 0 < chunk_size <= _MAX_CHUNK:
        raise ValueError(f"chunk_size={chunk_size} outside 1..{_MAX_CHUNK}")
    aes = AESGCM(key)
    fixed = _FIXED.pack(MAGIC, _VERSION, chunk_size, os.urandom(8), size)
    header = fixed + _key_check(key, fixed)
    dst.write(header)
    chunks = max(1, -(-size // chunk_size))
    if chunks >= 2**32:
        raise ValueError("file too large for this chunk size")
    prefix = fixed[13:21]
    for index in range(chunks):
        plain = src.read(chunk_size)
        last = index == chunks - 1
        dst.write(aes.encrypt(_nonce(prefix, index), plain, _aad(header, index, last)))


def decrypt_stream(src: BinaryIO, key: bytes, *, name: str) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk; ``name`` labels errors.

    Raises:
        ModelLoadError: Not an encrypted model, wrong key, or a tampered/truncated file.
    """
    header = src.read(_HEADER_LEN)
    if len(header) < _HEADER_LEN or not is_encrypted(header):
        raise ModelLoadError(f"{name}: not a luodi-encrypted model file")
    fixed = header[: _FIXED.size]
    _magic, version, chunk_size, prefix, size = _FIXED.unpack(fixed)
    if version != _VERSION or not 0 < chunk_size <= _MAX_CHUNK:
        raise ModelLoadError(f"{name}: unsupported encrypted-model header (version {version})")
    if _key_check(key, fixed) != header[_FIXED.size :]:
        raise ModelLoadError(f"{name}: wrong model key (the file was encrypted with another)")
    aes = AESGCM(key)
    chunks = max(1, -(-size // chunk_size))
    produced = 0
    for index in range(chunks):
        want = min(chunk_size, size - produced) + _TAG
        sealed = src.read(want)
        if len(sealed) != want:
            raise ModelLoadError(f"{name}: truncated at chunk {index} of {chunks}")
        try:
            plain = aes.decrypt(
                _nonce(prefix, index), sealed, _aad(header, index, index == chunks - 1)
            )
        except InvalidTag as exc:
            raise ModelLoadError(
                f"{name}: chunk {index} failed authentication (file tampered or corrupted)"
            ) from exc
        produced += len(plain)
        yield plain
    if src.read(1):
        raise ModelLoadError(f"{name}: unexpected data after the last chunk")
