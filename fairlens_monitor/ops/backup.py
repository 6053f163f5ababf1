"""Backups of the SQLite store: a consistent online copy, checked before it is kept.

Beside the **log** step. ``backup_sqlite`` copies the database with SQLite's online backup API
(a consistent snapshot while the daemon keeps writing), runs ``PRAGMA integrity_check`` and
the full chain and checkpoint verification on the copy, and only then gives it its final
name; a copy that fails is deleted and the error says why. ``prune_backups`` keeps the
newest N of the scheduled ones. PostgreSQL is backed up with its own tools (``pg_dump``).
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fairlens_monitor.ops.verification import verify_copy
from fairlens_monitor.security.crypto import fsync_dir
from fairlens_monitor.security.safefiles import sha256_of
from fairlens_monitor.store.db import sqlite_path
from fairlens_monitor.store.errors import StoreError

PREFIX = "fairlens-"


@dataclass(frozen=True)
class Backup:
    """A verified backup: where, which chain head it holds, and the file's SHA-256."""

    path: Path
    head_seq: int
    head_hash: str
    sha256: str
    size: int


def backup_sqlite(
    url: str, dest: Path, *, anchor_file: Path, public_key: Path, busy_timeout_ms: int = 5000
) -> Backup:
    """Copy the SQLite database at ``url`` to ``dest``, then verify the copy.

    Args:
        url: the (SQLite) database URL.
        dest: the backup file to create; it must not exist.
        anchor_file: the anchor file, to verify the copy's checkpoints against.
        public_key: the checkpoint public key.
        busy_timeout_ms: how long to wait for a writer's lock.

    Returns:
        The verified backup.

    Raises:
        StoreError: not a SQLite database, ``dest`` exists or its folder cannot be made, the
            copy fails, or the copy fails ``integrity_check`` or chain verification (it is
            then deleted).
        CannotVerifyError: checkpoints exist but the public key or anchor file is missing.
    """
    source = sqlite_path(url)
    if source is None:
        raise StoreError(
            url,
            "backup copies SQLite files; back a PostgreSQL database up with "
            "pg_dump (see docs/OPERATIONS.md)",
        )
    if not source.exists():
        raise StoreError(url, f"no database file at {source}")
    if dest.exists():
        raise StoreError(str(dest), "already exists; give a new file name")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. under /sys, or in a read-only folder
        raise StoreError(str(dest), f"cannot create its folder: {exc.strerror}") from None
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        copy_sqlite(source, partial, busy_timeout_ms)
        check = verify_copy(partial, anchor_file=anchor_file, public_key=public_key)
        head_seq, head_hash, report = check.head_seq, check.head_hash, check.report
        if not report.intact:
            first = report.anomalies[0]
            raise StoreError(
                str(dest),
                f"the copy does not verify: seq {first.seq} "
                f"{first.kind}; the source needs `verify` first",
            )
        digest = sha256_of(partial)
        os.replace(partial, dest)
        fsync_dir(dest.parent)
    finally:
        remove_sqlite_files(partial)
    return Backup(dest, head_seq, head_hash, digest, dest.stat().st_size)


def copy_sqlite(source: Path, target: Path, busy_timeout_ms: int) -> None:
    """Copy a SQLite file with the online backup API, check its integrity, make it 0600.

    Raises:
        StoreError: the copy failed or fails ``integrity_check``.
    """
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=busy_timeout_ms / 1000)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)  # one consistent snapshot, taken while writers go on
        # One self-contained file: reading the copy must not create -wal/-shm files.
        dst.execute("PRAGMA journal_mode = DELETE")
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        dst.commit()
    except sqlite3.Error as exc:
        raise StoreError(str(target), f"backup failed: {exc}") from None
    finally:
        src.close()
        dst.close()
    if check != "ok":
        raise StoreError(str(target), f"the copy fails integrity_check: {check}")
    os.chmod(target, 0o600)


def backup_payload(made: Backup, pruned: list[Path] | None = None) -> dict[str, Any]:
    """The ``backup_made`` event's payload: the one shape for ``backup`` and the daemon.

    Args:
        made: the verified backup.
        pruned: older scheduled backups deleted after it (scheduled backups only).

    Returns:
        File name, chain head seq and hash, SHA-256 of the copy (and the pruned names).
    """
    payload: dict[str, Any] = {
        "file": made.path.name,
        "head_seq": made.head_seq,
        "head_hash": made.head_hash,
        "sha256": made.sha256,
    }
    if pruned is not None:
        payload["pruned"] = [p.name for p in pruned]
    return payload


def remove_sqlite_files(path: Path, *, main: bool = True) -> None:
    """Delete a SQLite file's ``-wal`` and ``-shm`` side files (and the file, with ``main``)."""
    for suffix in ("", "-wal", "-shm") if main else ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def scheduled_name(folder: Path, moment: datetime) -> Path:
    """The file name of a scheduled backup taken at ``moment`` (UTC, sortable)."""
    return folder / f"{PREFIX}{moment.strftime('%Y%m%dT%H%M%S%fZ')}.db"


def prune_backups(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` scheduled backups in ``folder``; return the deleted."""
    backups = sorted(folder.glob(f"{PREFIX}*.db"))
    doomed = backups[:-keep] if keep > 0 else backups
    for path in doomed:
        path.unlink()
    return doomed
