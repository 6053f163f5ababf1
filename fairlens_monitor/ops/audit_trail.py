"""Writing the audit trail at the I/O edge: checkpoints, the anchor file, a chain's start.

simulate → measure → detect → alert → **log**. Joins the pure checkpoint logic
(:mod:`fairlens_monitor.audit.checkpoints`) to the database, the anchor file and the signing
key: ``write_checkpoint``, ``checkpoint_due``, ``append_anchor``/``reconcile_anchor`` and
the start of a chain (``check_chain_start``, ``start_new_chain``). Checking the trail is
:mod:`fairlens_monitor.ops.verification`; the export is :mod:`fairlens_monitor.ops.export`.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fairlens_monitor.audit import anchor
from fairlens_monitor.audit.checkpoints import (
    NO_PREVIOUS,
    Checkpoint,
    digest,
    sign_checkpoint,
)
from fairlens_monitor.audit.events import CHAIN_STARTED
from fairlens_monitor.errors import AnchorWriteError, ChainLostError
from fairlens_monitor.security.safefiles import sha256_of
from fairlens_monitor.store.repository import Repository


def check_chain_start(repo: Repository, anchor_file: Path) -> None:
    """Refuse to start a new chain beside an anchor file that holds another one.

    After the database is lost, the next ``once``/``run`` would otherwise start a fresh
    chain at seq 1 while the anchor file holds checkpoints of the old one.

    Raises:
        ChainLostError: the database holds no audit event and the anchor file holds
            checkpoints (restore from a backup, or start a new anchor with ``--new-chain``).
    """
    # The anchor file first, then the database: a checkpoint reaches the anchor file only
    # after its transaction committed (ops.sealing), so a start racing the first cycle of
    # another process that already sees the anchored checkpoint also sees its events.
    if (last := _last_anchored(anchor_file)) > 0 and repo.head()[0] == 0:
        raise ChainLostError(anchor_file, last)


def start_new_chain(repo: Repository, anchor_file: Path, *, actor: str, ts: str) -> Path | None:
    """Set the old chain's anchor file aside and record that a new chain starts here.

    Only when the database holds no audit event and the anchor file holds checkpoints;
    otherwise nothing happens. The old file is renamed (never deleted) and the first event
    of the new chain, ``chain_started``, names it with its SHA-256 and last anchored seq.

    Returns:
        Where the old anchor file went, or None when nothing was done.
    """
    if repo.head()[0] != 0 or (last := _last_anchored(anchor_file)) == 0:
        return None
    digest = sha256_of(anchor_file)
    stamp = ts.replace(":", "").replace("-", "")[:15]
    aside = anchor_file.with_name(f"{anchor_file.name}.old-chain-{stamp}")
    anchor_file.replace(aside)
    repo.append_event(
        CHAIN_STARTED,
        actor,
        {
            "reason": "operator started a new chain (--new-chain) after the database was lost",
            "previous_anchor_file": aside.name,
            "previous_anchor_sha256": digest,
            "previous_anchored_seq": last,
        },
        ts=ts,
    )
    return aside


def write_checkpoint(
    repo: Repository, key: Ed25519PrivateKey, *, anchor_file: Path, ts: str
) -> Checkpoint | None:
    """Sign the current chain head, append it to the anchor file, then record it.

    The anchor file is written first: a checkpoint the database records is always one the
    anchor file got (a crash between the two leaves only an anchor line, which verifies on
    its own). Checkpoints the database holds beyond the anchor file's last line (signed
    inside a cycle's transaction, whose append then failed) are appended first: see
    :func:`reconcile_anchor`.

    Args:
        repo: the repository.
        key: the Ed25519 signing key.
        anchor_file: the anchor file to append to.
        ts: RFC 3339 time of signing.

    Returns:
        The checkpoint, or None when the chain is empty or the head is already anchored in
        both the database and the anchor file.

    Raises:
        AnchorWriteError: the anchor file cannot be written (nothing was recorded then).
    """
    reconcile_anchor(repo, anchor_file)
    seq, head_hash = repo.head()
    if seq == 0 or repo.last_checkpoint_seq() >= seq:
        return None
    last = repo.last_checkpoint()
    cp = sign_checkpoint(
        key, seq=seq, head_hash=head_hash, ts=ts, prev=NO_PREVIOUS if last is None else digest(last)
    )
    append_anchor(anchor_file, cp)
    repo.save_checkpoint(cp)
    return cp


def _last_anchored(anchor_file: Path) -> int:
    """The anchor file's last seq; an unreadable file is an :class:`AnchorWriteError`."""
    try:
        return anchor.last_seq(anchor_file)
    except OSError as exc:  # e.g. a folder where the file should be
        raise AnchorWriteError(anchor_file, exc.strerror or type(exc).__name__) from None


def append_anchor(anchor_file: Path, cp: Checkpoint) -> None:
    """Append ``cp`` to the anchor file.

    Raises:
        AnchorWriteError: the file (or its folder) cannot be written; one line, no trace.
    """
    try:
        anchor.append(anchor_file, cp)
    except OSError as exc:
        raise AnchorWriteError(anchor_file, exc.strerror or type(exc).__name__) from None


def reconcile_anchor(repo: Repository, anchor_file: Path) -> int:
    """Append to the anchor file the database's checkpoints newer than its last line.

    Returns:
        How many checkpoints were appended.

    Raises:
        AnchorWriteError: the anchor file cannot be written.
    """
    last = repo.last_checkpoint_seq()
    if last == 0:
        return 0
    anchored = _last_anchored(anchor_file)
    missing = [cp for cp in repo.checkpoints() if cp.seq > anchored] if last > anchored else []
    for cp in missing:
        append_anchor(anchor_file, cp)
    return len(missing)


def checkpoint_due(repo: Repository, every: int, head_seq: int | None = None) -> bool:
    """Return True when at least ``every`` events came after the newest checkpoint.

    Args:
        repo: the repository.
        every: events between checkpoints.
        head_seq: the chain head's seq when the caller knows it (the last event it
            appended); None reads it from the database.
    """
    head = repo.head()[0] if head_seq is None else head_seq
    return head - repo.last_checkpoint_seq() >= every
