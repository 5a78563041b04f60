"""``luodi model encrypt|decrypt|keygen``: model files encrypted at rest."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from luodi.errors import ConfigError, LuodiError
from luodi.security.crypto import KeySource, decrypt_file, encrypt_file, is_encrypted_file

app = typer.Typer(help="Encrypt and decrypt model files (AES-256-GCM).", no_args_is_help=True)

KeyEnvOpt = Annotated[str | None, typer.Option("--key-env", help="Variable holding the key.")]
KeyFileOpt = Annotated[Path | None, typer.Option("--key-file", help="File holding the key.")]
KmsOpt = Annotated[str | None, typer.Option("--kms-command", help="Command printing the key.")]


def _key(key_env: str | None, key_file: Path | None, kms_command: str | None) -> bytes:
    given = [v for v in (key_env, key_file, kms_command) if v is not None]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --key-env, --key-file, --kms-command")
    return KeySource(env=key_env, file=key_file, kms_command=kms_command).load()


def _fail(exc: LuodiError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(2 if isinstance(exc, ConfigError) else 1)


@app.command()
def encrypt(
    src: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Plain model file.")],
    dst: Annotated[Path, typer.Argument(help="Encrypted file to write.")],
    key_env: KeyEnvOpt = None,
    key_file: KeyFileOpt = None,
    kms_command: KmsOpt = None,
    chunk_mib: Annotated[int, typer.Option(min=1, max=256, help="Chunk size, MiB.")] = 4,
) -> None:
    """Encrypt a model file in authenticated chunks (constant memory)."""
    try:
        key = _key(key_env, key_file, kms_command)
        if is_encrypted_file(src):
            raise ConfigError(f"{src} is already encrypted")
        encrypt_file(src, dst, key, chunk_size=chunk_mib * 1024 * 1024)
    except LuodiError as exc:
        raise _fail(exc) from exc
    typer.echo(f"encrypted {src} -> {dst}")


@app.command()
def decrypt(
    src: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Encrypted file.")],
    dst: Annotated[Path, typer.Argument(help="Plain file to write.")],
    key_env: KeyEnvOpt = None,
    key_file: KeyFileOpt = None,
    kms_command: KmsOpt = None,
) -> None:
    """Decrypt a model file; refuses a wrong key or a tampered file."""
    try:
        decrypt_file(src, dst, _key(key_env, key_file, kms_command))
    except LuodiError as exc:
        raise _fail(exc) from exc
    typer.echo(f"decrypted {src} -> {dst}")


@app.command()
def keygen(
    out: Annotated[Path, typer.Option(help="Key file to create (mode 600).")],
) -> None:
    """Write a new random 256-bit key as hex to a file readable only by you."""
    if out.exists():
        raise typer.BadParameter(f"{out} exists; refusing to overwrite a key")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    typer.echo(f"wrote key to {out}")
