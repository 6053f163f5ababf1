"""Who may read decrypted explanations on the trend page: a token in the key folder.

The page (the last step, after **log**) can decrypt alert explanations whenever the Fernet
key is readable by the process serving it, which would let anyone who can load the page read
what the 0600 key file protects. So the page decrypts only for a browser session that gave
the **page token**: a random secret kept in ``page.token`` in the key folder (0600, in the
0700 folder, like the keys), created and rotated by ``fairlens-monitor page-token``, and
compared in constant time (``hmac.compare_digest``). A page served beyond this machine shows
nothing at all before sign-in.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path

from fairlens_monitor.errors import KeyFileError
from fairlens_monitor.security.crypto import (
    KeyExistsError,
    create_key_file,
    fsync_dir,
    read_private_file,
)

PAGE_TOKEN_FILE = "page.token"  # noqa: S105 - a file name, not a password
TOKEN_BYTES = 32  # 256 bits: guessing is hopeless, so no lock-out is needed


def page_token_path(key_dir: Path) -> Path:
    """Return where the page token lives inside ``key_dir``."""
    return key_dir / PAGE_TOKEN_FILE


def create_page_token(key_dir: Path, *, rotate: bool) -> Path:
    """Write a new random page token to ``key_dir/page.token`` (0600, folder 0700).

    Args:
        key_dir: the key folder.
        rotate: replace an existing token (every signed-in page session is then signed out
            at its next refresh); without it an existing token is an error.

    Returns:
        The token file.

    Raises:
        KeyExistsError: the token exists and ``rotate`` is False.
        KeyFileError: the folder or file cannot be written, or the folder is open to others.
    """
    path = page_token_path(key_dir)
    token = secrets.token_urlsafe(TOKEN_BYTES).encode("ascii")
    if not rotate or not path.exists():
        try:
            create_key_file(path, token)
        except KeyExistsError:
            raise KeyExistsError(
                str(path), "a page token exists already", fix="fairlens-monitor page-token --rotate"
            ) from None
        return path
    staged = key_dir / f".{path.name}.{os.getpid()}.new"  # made whole, then swapped in
    staged.unlink(missing_ok=True)
    create_key_file(staged, token)
    os.replace(staged, path)
    fsync_dir(key_dir)
    return path


def load_page_token(key_dir: Path) -> bytes | None:
    """Return the page token, or None when none was created.

    Raises:
        KeyFileError: the token file or its folder is readable by other users, or it is
            empty.
    """
    path = page_token_path(key_dir)
    if not path.exists():
        return None
    token = read_private_file(path)
    if not token:
        raise KeyFileError(str(path), "empty", fix="fairlens-monitor page-token --rotate")
    return token


def token_matches(given: str, expected: bytes) -> bool:
    """Whether ``given`` is the page token, compared in constant time."""
    return hmac.compare_digest(given.strip().encode("utf-8"), expected)


def is_loopback(address: str | None) -> bool:
    """Whether a listen address reaches only this machine (unset or ``0.0.0.0``: no)."""
    if not address:
        return False  # Streamlit then listens on every interface
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface
