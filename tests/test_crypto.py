"""Key files: created private, refused when exposed or corrupt; tokens round-trip."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from fairlens_monitor.errors import DecryptionError, KeyFileError
from fairlens_monitor.security.crypto import create_key_file, fernet_key_path, load_cipher


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_load_creates_a_private_key(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    cipher = load_cipher(key_dir, create=True)
    assert mode(key_dir) == 0o700
    assert mode(fernet_key_path(key_dir)) == 0o600
    assert load_cipher(key_dir, create=False).key_id == cipher.key_id


def test_key_is_created_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_cipher(tmp_path / "keys", create=True)
    finally:
        os.umask(old)
    assert mode(fernet_key_path(tmp_path / "keys")) == 0o600


@pytest.mark.parametrize("perms", [0o644, 0o640, 0o604, 0o660])
def test_exposed_key_is_refused_with_the_fix(tmp_path: Path, perms: int) -> None:
    load_cipher(tmp_path, create=True)
    path = fernet_key_path(tmp_path)
    path.chmod(perms)
    with pytest.raises(KeyFileError, match=rf"refusing.*chmod 600 {path}"):
        load_cipher(tmp_path, create=False)


def test_corrupt_key_is_a_clear_error(tmp_path: Path) -> None:
    create_key_file(fernet_key_path(tmp_path), b"not-a-key")
    with pytest.raises(KeyFileError, match="corrupt"):
        load_cipher(tmp_path, create=False)


def test_missing_key_without_permission_to_create(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"missing.*restore the key file"):
        load_cipher(tmp_path, create=False)
    assert not fernet_key_path(tmp_path).exists()


def test_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    create_key_file(tmp_path / "k", b"one")
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        create_key_file(tmp_path / "k", b"two")
    assert (tmp_path / "k").read_bytes() == b"one\n"


def test_round_trip_and_wrong_key(tmp_path: Path) -> None:
    cipher = load_cipher(tmp_path / "a", create=True)
    token = cipher.encrypt("DIR = 0.64 (<0.8). Potential bias — likely causes: x.")
    assert token.startswith("gAAAAA")
    assert "DIR" not in token
    assert cipher.decrypt(token) == "DIR = 0.64 (<0.8). Potential bias — likely causes: x."
    other = load_cipher(tmp_path / "b", create=True)
    with pytest.raises(DecryptionError, match="another key"):
        other.decrypt(token)
    with pytest.raises(DecryptionError):
        cipher.decrypt(token[:-4] + "AAAA")


def test_key_file_holds_a_standard_fernet_key(tmp_path: Path) -> None:
    cipher = load_cipher(tmp_path, create=True)
    key = fernet_key_path(tmp_path).read_bytes().strip()
    assert Fernet(key).decrypt(cipher.encrypt("x").encode()) == b"x"
