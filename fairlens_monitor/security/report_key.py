"""The report key: the Ed25519 key that signs an examiner's pack (``report``), apart from the
checkpoint key.

A pack's ``MANIFEST.json`` lists every file of the pack with its SHA-256; its raw 64-byte
Ed25519 signature is ``MANIFEST.json.sig``. The key that signs it is its own pair in the key
folder, ``report_ed25519.key`` (PKCS#8 PEM, created 0600 on first use in a 0700 folder, and
refused when group or others may read it, like every private key file here) and
``report_ed25519.pub`` (SubjectPublicKeyInfo PEM, what an examiner verifies with
``openssl pkeyutl -verify -pubin -inkey report_ed25519.pub -rawin -in MANIFEST.json
-sigfile MANIFEST.json.sig``). Why a separate key: handing over a pack must never need the
key that vouches for the audit chain, and a leaked report key cannot forge a checkpoint.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from fairlens_monitor.errors import KeyFileError
from fairlens_monitor.security.crypto import (
    SIGNING_KEY_FILE,
    KeyExistsError,
    create_key_file,
    fsync_dir,
    public_key_id,
    read_private_file,
)

REPORT_KEY_FILE = "report_ed25519.key"
REPORT_PUBLIC_FILE = "report_ed25519.pub"


def public_pem(key: Ed25519PrivateKey) -> bytes:
    """Return the PEM (SubjectPublicKeyInfo) of ``key``'s public half, as openssl reads it."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def report_key_id(key: Ed25519PrivateKey) -> str:
    """Return the public fingerprint of the report key (16 hex digits of the SHA-256 of its
    raw public bytes, as ``verify`` shows the checkpoint key's)."""
    return public_key_id(key.public_key())


def load_report_key(
    key_dir: Path, *, checkpoint_key: Ed25519PublicKey | None = None
) -> Ed25519PrivateKey:
    """Load the report signing key from ``key_dir``, creating the pair on first use.

    The private file is created whole or not at all (``create_key_file``: 0600, in a 0700
    folder, never over an existing file); the public PEM beside it is (re)written from the
    private key whenever it is missing or differs, so it always matches what signs.

    Args:
        key_dir: the key folder (``keys.dir`` or ``FAIRLENS_KEY_DIR``).
        checkpoint_key: the checkpoint public key, when known: the report key must differ
            from it, and from the checkpoint signing key in ``key_dir`` when that is there
            (a fresh chain has no public key file yet).

    Returns:
        The private key.

    Raises:
        KeyFileError: the key or its folder is readable by group or others, the key is not
            a PEM Ed25519 private key, it is the checkpoint key, or a file cannot be written.
    """
    path = key_dir / REPORT_KEY_FILE
    try:
        missing = not path.exists()
    except OSError as exc:  # a key folder this user may not enter
        raise KeyFileError(str(path), f"cannot read: {exc.strerror}") from None
    if missing:
        fresh = Ed25519PrivateKey.generate()
        pem = fresh.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with contextlib.suppress(KeyExistsError):  # another process made it: read the winner's
            create_key_file(path, pem.strip())
    data = read_private_file(path)  # refuses group/world access to the file or folder
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFileError(
            str(path),
            "corrupt: not a PEM Ed25519 private key",
            fix="restore it from a backup of the key folder, or move it away to make a new "
            "report key (earlier packs stay verifiable with their own public key)",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(str(path), "not an Ed25519 key")
    checkpoint = {_raw(k) for k in (checkpoint_key, _signing_public(key_dir)) if k is not None}
    if _raw(key.public_key()) in checkpoint:
        raise KeyFileError(
            str(path),
            "is the checkpoint signing key; the report key must be a pair of its own (whoever "
            "holds it could otherwise sign checkpoints)",
            fix="move it away to make a new report key",
        )
    _write_public(key_dir / REPORT_PUBLIC_FILE, public_pem(key))
    return key


def _signing_public(key_dir: Path) -> Ed25519PublicKey | None:
    """The public half of the checkpoint signing key in ``key_dir``, or None when it is not
    there or cannot be read (then only ``checkpoint_key`` is compared)."""
    try:
        key = serialization.load_pem_private_key(
            read_private_file(key_dir / SIGNING_KEY_FILE), password=None
        )
    except (KeyFileError, OSError, ValueError, TypeError, UnsupportedAlgorithm):
        return None
    return key.public_key() if isinstance(key, Ed25519PrivateKey) else None


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _write_public(public: Path, pem: bytes) -> None:
    """Put ``pem`` at ``public`` (0644, replaced atomically) unless it holds it already."""
    try:
        if public.is_file() and not public.is_symlink() and public.read_bytes() == pem:
            return
        staged = public.with_name(f".{public.name}.{os.getpid()}.tmp")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(staged, public)
        fsync_dir(public.parent)
    except OSError as exc:
        raise KeyFileError(str(public), f"cannot write: {exc.strerror}") from None
