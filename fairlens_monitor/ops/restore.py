"""Restore the SQLite store from a backup, and say so on the record (``fairlens-monitor restore``).

Beside the **log** step. A backup holds the chain up to its head N, while the anchor file may
already hold checkpoints of history after N that the restore loses. ``restore_sqlite``
refuses a backup that fails ``integrity_check`` or chain verification, and one that ends
before checkpoints in the anchor file unless the operator passes ``--accept-loss`` (the
statement then names every lost anchored seq, signed), takes the daemon's
lock (no daemon may run meanwhile), keeps the replaced database file beside the new one
(renamed, never deleted), puts the verified copy in place, appends a ``chain_restored`` event
signed with the checkpoint key — "restored from seq N; the anchored history up to M, signed
before now, is gone" — signs a new checkpoint, and verifies the result. ``verify`` reads that
event to set the superseded checkpoints aside (``trail._apply_restores``) while still
checking everything else.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.audit.checkpoints import sign_restore
from fairlens_monitor.audit.events import CHAIN_RESTORED
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.ops.audit_trail import write_checkpoint
from fairlens_monitor.ops.backup import copy_sqlite, remove_sqlite_files
from fairlens_monitor.ops.verification import TrailReport, verify_copy, verify_store
from fairlens_monitor.security.safefiles import sha256_of
from fairlens_monitor.store.db import instance_lock, make_engine, sqlite_path
from fairlens_monitor.store.errors import StoreError
from fairlens_monitor.store.repository import Repository


@dataclass(frozen=True)
class Restored:
    """What a restore did."""

    from_seq: int
    superseded_to: int
    replaced: Path | None
    restore_seq: int
    report: TrailReport


def restore_sqlite(
    settings: Settings, source: Path, signer: Ed25519PrivateKey, *, accept_loss: bool = False
) -> Restored:
    """Replace the configured SQLite database with the backup ``source``.

    Args:
        settings: validated settings (database, anchor file, key folder).
        source: the backup file.
        signer: the checkpoint signing key (signs the restore statement and a checkpoint).
        accept_loss: the backup ends before checkpoints the anchor file holds: restore it
            anyway, and name every lost anchored seq in the signed statement.

    Returns:
        The restored head, the superseded range, where the replaced file went, and the
        verification report of the result.

    Raises:
        StoreError: not SQLite, the backup is missing or fails integrity or verification,
            or it would lose anchored history without ``accept_loss`` (nothing is changed
            then), or the result does not verify.
        AlreadyRunningError: a daemon is running on the database.
    """
    url = settings.database.url
    target = sqlite_path(url)
    if target is None:
        raise StoreError(
            url,
            "restore replaces SQLite files; restore PostgreSQL with "
            "pg_restore (see docs/OPERATIONS.md)",
        )
    if not source.is_file():
        raise StoreError(str(source), "no such backup file")
    anchor_file = settings.audit.anchor_file
    public_key = settings.keys.public_key
    with instance_lock(url):
        staged = target.with_name(target.name + ".restoring")
        staged.unlink(missing_ok=True)
        try:
            copy_sqlite(source, staged, settings.database.busy_timeout_ms)
            from_seq, head_hash, lost = _verified_head(staged, anchor_file, public_key)
            if lost and not accept_loss:
                raise StoreError(str(source), _loss_message(from_seq, lost))
            replaced = _set_aside(target)
            os.replace(staged, target)
        finally:
            remove_sqlite_files(staged)
        now = rfc3339(datetime.now(UTC))
        superseded_to = max([from_seq, *lost])
        repo = Repository(make_engine(url, busy_timeout_ms=settings.database.busy_timeout_ms))
        try:
            statement = sign_restore(
                signer,
                from_seq=from_seq,
                head_hash=head_hash,
                superseded_to=superseded_to,
                ts=now,
                lost_checkpoints=lost,
            )
            record = repo.append_event(
                CHAIN_RESTORED,
                "cli",
                {
                    **statement,
                    "backup_file": source.name,
                    "backup_sha256": sha256_of(source),
                    "replaced_file": None if replaced is None else replaced.name,
                },
                ts=now,
            )
            write_checkpoint(repo, signer, anchor_file=anchor_file, ts=now)
            report = verify_store(repo, anchor_file=anchor_file, public_key=public_key)
        finally:
            repo.engine.dispose()
    if not report.chain.intact:
        first = report.chain.anomalies[0]
        raise StoreError(
            url,
            f"restored, but the result does not verify: seq {first.seq} "
            f"{first.kind}: {first.detail}",
        )
    return Restored(from_seq, superseded_to, replaced, record.seq, report)


def _verified_head(copy: Path, anchor_file: Path, public_key: Path) -> tuple[int, str, list[int]]:
    """The backup's head and the anchored seqs its restore would lose, once it verifies."""
    check = verify_copy(copy, anchor_file=anchor_file, public_key=public_key, count_loss=True)
    if not check.report.intact:
        first = check.report.anomalies[0]
        raise StoreError(
            str(copy),
            f"the backup does not verify (seq {first.seq} {first.kind}); refusing to restore it",
        )
    return check.head_seq, check.head_hash, check.lost


def _loss_message(from_seq: int, lost: list[int]) -> str:
    return (
        f"the backup ends at seq {from_seq} but the anchor file holds {len(lost)} "
        f"checkpoints after it (up to seq {lost[-1]}): restoring it loses anchored "
        f"events {from_seq + 1}..{lost[-1]}; nothing was changed. Restore a newer backup, "
        "or pass --accept-loss to restore this one (the loss is signed and recorded, and "
        "verify lists it)"
    )


def _set_aside(target: Path) -> Path | None:
    """Rename the current database (after folding its WAL in) out of the way; keep it."""
    if not target.exists():
        remove_sqlite_files(target, main=False)
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = target.with_name(f"{target.name}.replaced-{stamp}")
    if _looks_like_sqlite(target):
        try:
            conn = sqlite3.connect(target)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
        except sqlite3.Error:  # damaged: keep it as it is, its WAL beside it
            pass
    # A file that is not a SQLite database (or whose WAL could not be folded in) is set
    # aside unopened, with its -wal and -shm files, so nothing of it is lost.
    for suffix in ("-wal", "-shm"):
        side = target.with_name(target.name + suffix)
        if side.exists():
            os.replace(side, aside.with_name(aside.name + suffix))
    os.replace(target, aside)
    return aside


def _looks_like_sqlite(path: Path) -> bool:
    """True when the file starts with SQLite's 16-byte header string."""
    try:
        with path.open("rb") as handle:
            return handle.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False
