"""The anchor file: append-only JSON lines of signed checkpoints, kept outside the database.

The **log** step's second witness. Each line is appended with ``O_APPEND`` and fsynced, so a
crash leaves at worst one incomplete last line, which readers report rather than hide.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from fairlens_monitor.audit.checkpoints import Checkpoint, parse_line
from fairlens_monitor.security.safefiles import open_regular, regular_fd


@dataclass(frozen=True)
class AnchorContents:
    """What an anchor file holds: its checkpoints and the numbers of unreadable lines."""

    checkpoints: list[Checkpoint]
    bad_lines: list[int]


def append(path: Path, cp: Checkpoint) -> None:
    """Append one checkpoint line and fsync it (the folder is created if needed).

    Raises:
        OSError: the file cannot be written, or is not a regular file (a FIFO is refused
            rather than waited on).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = regular_fd(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, (cp.to_json() + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> AnchorContents:
    """Read every checkpoint in the anchor file; a missing file holds none.

    Returns:
        The checkpoints in file order and the 1-based numbers of lines that did not parse.

    Raises:
        OSError: the path is not a regular file (``safefiles.NOT_REGULAR``) or unreadable.
    """
    if not path.exists():
        return AnchorContents([], [])
    checkpoints, bad = [], []
    with io.TextIOWrapper(open_regular(path), encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            cp = parse_line(line)
            if cp is None:
                bad.append(number)
            else:
                checkpoints.append(cp)
    return AnchorContents(checkpoints, bad)


def last_seq(path: Path, tail_bytes: int = 4096) -> int:
    """Return the seq of the last well-formed checkpoint line (0 when there is none).

    Reads only the file's tail, so it costs the same however long the file grows; when the
    tail holds no whole good line it falls back to reading the file.
    """
    try:
        with open_regular(path) as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - tail_bytes))
            lines = handle.read().decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines[1:] if size > tail_bytes else lines):
        cp = parse_line(line) if line.strip() else None
        if cp is not None:
            return cp.seq
    found = read(path).checkpoints if size > tail_bytes else []
    return found[-1].seq if found else 0
