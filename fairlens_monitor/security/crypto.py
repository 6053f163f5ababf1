"""Key files: the Fernet key of the **alert** step and the Ed25519 key of the **log** step.

simulate → measure → detect → **alert** → **log**. An alert's explanation leaves this module
only as a Fernet token (AES-128-CBC + HMAC-SHA256, from ``cryptography``); the plaintext is
never stored. Audit checkpoints are signed with a separate Ed25519 key whose public half
alone verifies them. Private key files are created 0600 in a 0700 folder, and one that group
or others can read is refused, with the ``chmod`` that fixes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fairlens_monitor.errors import DecryptionError, KeyFileError
from fairlens_monitor.security.safefiles import read_regular

FERNET_KEY_FILE = "fernet.key"
RETIRED_SUFFIX = ".retired"  # fernet-<key id>.retired: replaced by a rotation, still decrypts
STAGED_SUFFIX = ".staged"  # fernet-<key id>.staged: a rotation's new key before it took over
SIGNING_KEY_FILE = "checkpoint_ed25519.key"
PUBLIC_KEY_FILE = "checkpoint_ed25519.pub"


@dataclass(frozen=True)
class AlertCipher:
    """The current Fernet key (encrypts), its public fingerprint (``key_id``), and older keys
    kept after a rotation (they still decrypt tokens made before it, e.g. in backups)."""

    fernet: Fernet
    key_id: str
    path: Path
    older: tuple[Fernet, ...] = ()

    def encrypt(self, plaintext: str) -> str:
        """Encrypt ``plaintext`` (UTF-8) and return the Fernet token as text."""
        return self.fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Return the plaintext of ``token``.

        Raises:
            DecryptionError: the token was made with another key or is damaged.
        """
        try:
            keys = MultiFernet([self.fernet, *self.older])
            return keys.decrypt(token.strip().encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise DecryptionError(
                f"not a valid token for key {self.key_id} ({self.path}); it was made with "
                "another key or has been altered"
            ) from None


def key_fingerprint(key: bytes) -> str:
    """Return a short public identifier of a key (first 16 hex digits of its SHA-256)."""
    return hashlib.sha256(key.strip()).hexdigest()[:16]


def fernet_key_path(key_dir: Path) -> Path:
    """Return where the Fernet key lives inside ``key_dir``."""
    return key_dir / FERNET_KEY_FILE


class KeyExistsError(KeyFileError):
    """The key file to create exists already (another process may have just made it)."""


def create_key_file(path: Path, key: bytes) -> None:
    """Write ``key`` to a new file created 0600 (its folder 0700, created if needed).

    The file appears whole or not at all: the key is written and synced under a private
    temporary name, then hard-linked to ``path``, which fails if ``path`` exists. So of two
    processes creating the same key at once exactly one wins, and the other can read the
    winner's complete key (see :func:`load_cipher`).

    Args:
        path: the key file to create; it must not exist.
        key: the key material.

    Raises:
        KeyExistsError: the file already exists.
        KeyFileError: it cannot be written.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        check_key_dir(path.parent)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise KeyFileError(str(path), f"cannot create: {exc.strerror}") from None
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, key + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(temp, path)
    except FileExistsError:
        raise KeyExistsError(str(path), "already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise KeyFileError(str(path), f"cannot create: {exc.strerror}") from None
    finally:
        os.unlink(temp)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename or new file in ``folder`` durable (fsync the folder itself)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_key_dir(key_dir: Path) -> None:
    """Refuse a key folder that group or others may list, enter or write (it must be 0700).

    In an open folder another user could swap a key file for one they made, or read a key
    whose own mode was briefly wrong.

    Raises:
        KeyFileError: the folder's mode gives group or others any access.
    """
    mode = key_dir.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            str(key_dir),
            f"the key folder's permissions {stat.filemode(mode)} let other "
            "users in; refusing to use it",
            fix=f"chmod 700 {key_dir}",
        )


def read_private_file(path: Path) -> bytes:
    """Read a key file after checking that only its owner can read it and its folder.

    Args:
        path: the key file.

    Returns:
        Its bytes, stripped of surrounding white space.

    Raises:
        KeyFileError: missing, unreadable, or readable/writable by group or others, or in
            a folder group or others may enter.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyFileError(str(path), "missing") from None
    check_key_dir(path.parent)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            str(path),
            f"permissions {stat.filemode(mode)} let other users read it; refusing to use it",
            fix=f"chmod 600 {path}",
        )
    try:
        return read_regular(path).strip()
    except OSError as exc:
        raise KeyFileError(str(path), f"cannot read: {exc.strerror}") from None


def load_cipher(key_dir: Path, *, create: bool) -> AlertCipher:
    """Load the Fernet key from ``key_dir``, creating it first when allowed.

    Args:
        key_dir: the key folder (``keys.dir`` or ``FAIRLENS_KEY_DIR``).
        create: create a new key when none exists. Callers pass False once the database
            holds tokens, because a silently regenerated key would orphan them.

    Returns:
        The cipher.

    Raises:
        KeyFileError: the key is missing (and may not be created), corrupt, or readable by
            others.
    """
    path = fernet_key_path(key_dir)
    if not path.exists():
        if not create:
            staged = sorted(p.name for p in key_dir.glob(f"fernet-*{STAGED_SUFFIX}"))
            raise KeyFileError(
                str(path),
                "missing, but the database already holds alerts encrypted with a key; "
                "a new key would make them unreadable",
                fix=f"an interrupted 'keys rotate' left {staged[0]}: 'fairlens-monitor once', "
                "'run' or 'keys rotate' puts it in place"
                if staged
                else "restore the key file from backup, or point keys.dir / FAIRLENS_KEY_DIR "
                "at the folder that holds it",
            )
        with contextlib.suppress(KeyExistsError):  # if another process just made it, use it
            create_key_file(path, Fernet.generate_key())
    key = read_private_file(path)
    older = tuple(_fernet(p, read_private_file(p)) for p in older_key_files(key_dir))
    return AlertCipher(
        fernet=_fernet(path, key), key_id=key_fingerprint(key), path=path, older=older
    )


def install_staged_key(key_dir: Path, key_id: str) -> Path | None:
    """Finish an interrupted rotation: make ``fernet-<key_id>.staged`` the current key.

    Only while ``fernet.key`` is missing (a rotation renamed it to ``.retired`` and was
    killed before moving the staged key into its place).

    Args:
        key_dir: the key folder.
        key_id: the id of the rotation's new key (from its ``keys_rotated`` event).

    Returns:
        The key file put in place, or None when there was nothing to finish.
    """
    path, staged = fernet_key_path(key_dir), key_dir / f"fernet-{key_id}{STAGED_SUFFIX}"
    if path.exists() or not staged.exists():
        return None
    read_private_file(staged)  # the same checks as for the key it becomes
    os.replace(staged, path)
    fsync_dir(key_dir)
    return path


def older_key_files(key_dir: Path) -> list[Path]:
    """Return the retired and staged Fernet key files in ``key_dir``, newest first."""
    found = [
        p for p in key_dir.glob("fernet-*") if p.name.endswith((RETIRED_SUFFIX, STAGED_SUFFIX))
    ]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _fernet(path: Path, key: bytes) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        raise KeyFileError(
            str(path),
            "corrupt: not a Fernet key (32 url-safe base64 bytes)",
            fix="restore the key file from backup",
        ) from None


def public_key_id(public_key: Ed25519PublicKey) -> str:
    """Return a short public identifier of an Ed25519 key (SHA-256 of its raw bytes)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_signing_key(key_dir: Path, *, create: bool) -> Ed25519PrivateKey:
    """Load the checkpoint signing key, creating the key pair first when allowed.

    Args:
        key_dir: the key folder.
        create: create a new pair when none exists. Callers pass False once checkpoints
            exist, because a new key could not continue the signed history.

    Returns:
        The private key.

    Raises:
        KeyFileError: missing (and may not be created), corrupt, or readable by others.
    """
    path = key_dir / SIGNING_KEY_FILE
    if not path.exists():
        if not create:
            raise KeyFileError(
                str(path),
                "missing, but signed checkpoints already exist; a new key would not match them",
                fix="restore the key file from backup, or point keys.dir / FAIRLENS_KEY_DIR "
                "at the folder that holds it",
            )
        private = Ed25519PrivateKey.generate()
        try:
            create_key_file(
                path,
                private.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).strip(),
            )
        except KeyExistsError:
            pass  # another process created the pair a moment ago: read the winner's key
        else:
            public = key_dir / PUBLIC_KEY_FILE
            staged = public.with_name(f".{public.name}.{os.getpid()}.tmp")
            staged.write_bytes(
                private.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
            os.replace(staged, public)
            return private
    data = read_private_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFileError(
            str(path),
            "corrupt: not a PEM Ed25519 private key",
            fix="restore the key file from backup",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(str(path), "not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load an Ed25519 public key (PEM); public keys may be world-readable.

    Raises:
        KeyFileError: missing or not an Ed25519 public key.
    """
    try:
        key = serialization.load_pem_public_key(read_regular(path, 1 << 16))
    except FileNotFoundError:
        raise KeyFileError(
            str(path),
            "missing; the public key is needed to check signed checkpoints",
            fix="pass --public-key FILE",
        ) from None
    except OSError as exc:
        raise KeyFileError(str(path), f"cannot read: {exc.strerror}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(str(path), "not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(str(path), "not an Ed25519 public key")
    return key
