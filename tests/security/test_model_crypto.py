"""Model encryption at rest: round trips, wrong keys, tampering, memfd loading."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import pytest

from luodi.errors import ConfigError, ModelLoadError
from luodi.security.crypto import (
    KeySource,
    decrypt_file,
    encrypt_file,
    is_encrypted_file,
    open_model_for_loading,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(reversed(range(32)))
CHUNK = 4096
HEADER = 45


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + os.urandom(3 * CHUNK + 123))
    return path


@pytest.fixture
def sealed(plain: Path, tmp_path: Path) -> Path:
    out = tmp_path / "model.gguf.enc"
    encrypt_file(plain, out, KEY, chunk_size=CHUNK)
    return out


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK])
def test_encrypt_then_decrypt_gives_the_same_bytes(tmp_path: Path, size: int) -> None:
    src, enc, dec = tmp_path / "a", tmp_path / "a.enc", tmp_path / "a.dec"
    src.write_bytes(os.urandom(size))
    encrypt_file(src, enc, KEY, chunk_size=CHUNK)
    assert is_encrypted_file(enc) and not is_encrypted_file(src)
    decrypt_file(enc, dec, KEY)
    assert dec.read_bytes() == src.read_bytes()


def test_wrong_key_is_refused_clearly(sealed: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="wrong model key"):
        decrypt_file(sealed, tmp_path / "out", OTHER_KEY)
    assert not (tmp_path / "out").exists()


TAMPER = {
    "flipped-byte": lambda b: b[: HEADER + 10] + bytes([b[HEADER + 10] ^ 1]) + b[HEADER + 11 :],
    "truncated": lambda b: b[:-7],
    "last-chunk-dropped": lambda b: b[: HEADER + 3 * (CHUNK + 16)],
    "chunks-swapped": lambda b: (
        b[:HEADER]
        + b[HEADER + CHUNK + 16 : HEADER + 2 * (CHUNK + 16)]
        + b[HEADER : HEADER + CHUNK + 16]
        + b[HEADER + 2 * (CHUNK + 16) :]
    ),
    "appended": lambda b: b + b"x" * 20,
    "size-edited": lambda b: b[:21] + (1).to_bytes(8, "big") + b[29:],
}


@pytest.mark.parametrize("kind", sorted(TAMPER))
def test_tampered_file_is_refused(sealed: Path, tmp_path: Path, kind: str) -> None:
    sealed.write_bytes(TAMPER[kind](sealed.read_bytes()))
    with pytest.raises(ModelLoadError) as err:
        decrypt_file(sealed, tmp_path / "out", KEY)
    assert str(sealed) in err.value.message
    assert not (tmp_path / "out").exists()


def test_plain_model_is_loaded_from_its_own_path(plain: Path) -> None:
    with open_model_for_loading(plain, None) as path:
        assert path == plain


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memfd is Linux-only")
def test_encrypted_model_loads_from_memfd_without_plaintext_on_disk(
    plain: Path, sealed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_MODEL_KEY", KEY.hex())
    before = set(tmp_path.iterdir())
    with open_model_for_loading(sealed, KeySource(env="TEST_MODEL_KEY")) as path:
        assert str(path).startswith("/proc/self/fd/")
        assert path.read_bytes() == plain.read_bytes()
        assert set(tmp_path.iterdir()) == before  # nothing decrypted to disk
        with pytest.raises(OSError), open(path, "r+b") as handle:  # sealed read-only
            handle.write(b"x")


def test_encrypted_model_without_key_source_is_refused(sealed: Path) -> None:
    with (
        pytest.raises(ModelLoadError, match="no model key source"),
        open_model_for_loading(sealed, KeySource()),
    ):
        pass


@pytest.mark.parametrize("encoding", ["hex", "base64", "raw"])
def test_key_file_accepts_hex_base64_or_raw(tmp_path: Path, encoding: str) -> None:
    data = {"hex": KEY.hex().encode(), "base64": base64.b64encode(KEY), "raw": KEY}[encoding]
    key_file = tmp_path / "model.key"
    key_file.write_bytes(data)
    assert KeySource(file=key_file).load() == KEY


def test_key_from_kms_command(tmp_path: Path) -> None:
    source = KeySource(kms_command=f"{sys.executable} -c 'print(\"{KEY.hex()}\")'")
    assert source.load() == KEY
    failing = KeySource(kms_command=f"{sys.executable} -c 'import sys; sys.exit(3)'")
    with pytest.raises(ModelLoadError, match="exited 3"):
        failing.load()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (KeySource(env="LUODI_TEST_UNSET_KEY"), "not set"),
        (KeySource(file=Path("/nonexistent/key")), "cannot read"),
    ],
)
def test_missing_key_is_a_clear_error(source: KeySource, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        source.load()


def test_short_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHORT_KEY", "abcd")
    with pytest.raises(ModelLoadError, match=r"neither hex nor base64|needs 32"):
        KeySource(env="SHORT_KEY").load()


def test_no_source_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        KeySource().load()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_encryption_memory_stays_constant(tmp_path: Path) -> None:
    """Peak RSS while encrypting 160 MiB stays far below the file size."""
    import subprocess

    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        handle.truncate(160 * 1024 * 1024)  # sparse: 160 MiB without using the disk
    # VmHWM, not ru_maxrss: ru_maxrss survives exec and would report pytest's own peak.
    script = (
        "from pathlib import Path;"
        "from luodi.security.crypto import encrypt_file;"
        f"encrypt_file(Path({str(big)!r}), Path({str(tmp_path / 'big.enc')!r}), bytes(32));"
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=root
    )
    peak_mib = int(out.stdout.strip()) / 1024
    assert peak_mib < 110, f"peak RSS {peak_mib:.0f} MiB for a 160 MiB file"
