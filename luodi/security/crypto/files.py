"""Encrypting and decrypting model files, and opening them for the loader.

``open_model_for_loading`` hands llama.cpp a path it can read: the file itself when
it is plain, or ``/proc/self/fd/N`` of a sealed memfd holding the plaintext when it
is encrypted, so the plaintext never touches a disk. Before decrypting, the process
is made non-dumpable (``process.py``) so other processes of the same user cannot
read the memfd through ``/proc``. ``model_opener`` builds the loader's opener from
the security settings (key source, strict key files, encrypted-only models).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from luodi.config.security import SecuritySettings
from luodi.errors import ModelLoadError
from luodi.security.crypto.container import (
    DEFAULT_CHUNK,
    MAGIC,
    decrypt_stream,
    encrypt_stream,
    is_encrypted,
)
from luodi.security.crypto.key_source import KeySource
from luodi.security.crypto.process import make_non_dumpable

__all__ = [
    "ModelOpener",
    "decrypt_file",
    "encrypt_file",
    "is_encrypted_file",
    "model_opener",
    "open_model_for_loading",
]

ModelOpener = Callable[[Path | str], AbstractContextManager[Path]]
"""What the engine calls with a model path to get a path llama.cpp can read."""


def is_encrypted_file(path: Path) -> bool:
    """True if ``path`` starts with the encrypted-model magic."""
    with open(path, "rb") as f:
        return is_encrypted(f.read(len(MAGIC)))


def encrypt_file(src: Path, dst: Path, key: bytes, *, chunk_size: int = DEFAULT_CHUNK) -> None:
    """Encrypt ``src`` into ``dst`` (written beside it, then renamed into place)."""
    tmp = dst.with_name(dst.name + ".partial")
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        encrypt_stream(fin, fout, key, os.fstat(fin.fileno()).st_size, chunk_size=chunk_size)
        fout.flush()
        os.fsync(fout.fileno())
    tmp.replace(dst)


def decrypt_file(src: Path, dst: Path, key: bytes) -> None:
    """Decrypt ``src`` into ``dst``; nothing is left at ``dst`` if it fails.

    Raises:
        ModelLoadError: Wrong key or a tampered file.
    """
    tmp = dst.with_name(dst.name + ".partial")
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            for chunk in decrypt_stream(fin, key, name=str(src)):
                fout.write(chunk)
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def open_model_for_loading(
    path: Path | str, key_source: KeySource | None, *, require_encrypted: bool = False
) -> Iterator[Path]:
    """Yield a path the model loader can read, decrypting into memory if needed.

    The memfd lives as long as the context; llama.cpp mmaps it, so the plaintext is
    held once, in RAM, and is sealed read-only. The process is made non-dumpable
    first.

    Raises:
        ModelLoadError: Missing file, a plain file when ``require_encrypted``, no key
            for an encrypted file, wrong key, tampering, or no memfd support.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    if not is_encrypted_file(path):
        if require_encrypted:
            raise ModelLoadError(
                f"{path} is not encrypted and security.require_encrypted_models is on: "
                "encrypt it with `luodi model encrypt`"
            )
        yield path
        return
    if key_source is None or not key_source.configured:
        raise ModelLoadError(f"{path} is encrypted but no model key source is configured")
    if not hasattr(os, "memfd_create"):
        raise ModelLoadError(f"{path}: loading encrypted models needs Linux memfd support")
    key = key_source.load()
    make_non_dumpable()
    fd = os.memfd_create(f"luodi-model:{path.name}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        with open(path, "rb") as fin:
            for chunk in decrypt_stream(fin, key, name=str(path)):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
        seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
        os.lseek(fd, 0, os.SEEK_SET)
        yield Path(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def model_opener(security: SecuritySettings) -> ModelOpener:
    """The opener the engine loads models through, as ``security`` configures it.

    It applies ``security.model_key`` (with ``require_strict_key_permissions``) and
    ``require_encrypted_models``; an encrypted model makes the process non-dumpable.
    """
    key_source = KeySource.from_settings(
        security.model_key, strict=security.require_strict_key_permissions
    )
    required = security.require_encrypted_models

    def opener(path: Path | str) -> AbstractContextManager[Path]:
        return open_model_for_loading(path, key_source, require_encrypted=required)

    return opener
