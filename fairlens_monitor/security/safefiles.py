"""Opening a file the user named, safely: only a regular file, never waiting on a FIFO.

An edge helper used wherever the monitor reads a path from the command line or the config
(the config file, key files, the public key, the anchor file). A FIFO opened for reading
blocks until a writer comes; a device such as ``/dev/zero`` never ends. Both are refused
before a byte is read, with an ``OSError`` whose ``strerror`` says why, so every caller's
existing "cannot read: <strerror>" message covers it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

NOT_REGULAR = "not a regular file (a folder, FIFO or device)"


def regular_fd(path: Path, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """Open ``path`` with ``flags`` (blocking again once open) if it is a regular file.

    Args:
        path: the file (symlinks are followed).
        flags: ``os.open`` flags, e.g. ``os.O_WRONLY | os.O_APPEND | os.O_CREAT``.
        mode: the permissions of a file ``os.O_CREAT`` creates.

    Returns:
        The file descriptor (the caller closes it).

    Raises:
        FileNotFoundError: there is no such file (and ``flags`` does not create it).
        OSError: it is not a regular file (``strerror`` is :data:`NOT_REGULAR`) or cannot be
            opened.
    """
    fd = os.open(path, flags | os.O_NONBLOCK, mode)  # a FIFO opens at once, not on a peer
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, NOT_REGULAR, str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file (symlinks are followed).

    Args:
        path: the file.

    Returns:
        The open file (the caller closes it).

    Raises:
        FileNotFoundError: there is no such file.
        OSError: it is not a regular file (``strerror`` is :data:`NOT_REGULAR`) or cannot be
            opened.
    """
    return os.fdopen(regular_fd(path), "rb")


def read_regular(path: Path, limit: int | None = None) -> bytes:
    """Read a regular file's bytes (at most ``limit`` + 1 when a limit is given, so a caller
    can tell a file that is too large).

    Raises:
        FileNotFoundError, OSError: as :func:`open_regular`.
    """
    with open_regular(path) as handle:
        return handle.read() if limit is None else handle.read(limit + 1)


def sha256_of(path: Path, block: int = 1 << 20) -> str:
    """Return the SHA-256 (hex) of a regular file, read a block at a time: the one helper for
    the digest of a file (backups, decision files, an anchor file set aside).

    Args:
        path: the file (symlinks are followed; a FIFO or device is refused, never read).
        block: bytes read at a time (files can be large; memory stays bounded).

    Returns:
        64 lowercase hex digits.

    Raises:
        FileNotFoundError, OSError: as :func:`open_regular`.
    """
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()
