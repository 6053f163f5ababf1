"""The audit trail's operations at the I/O edge: verify, checkpoint, prove one entry, export.

simulate → measure → detect → alert → **log**. Joins the pure chain and checkpoint logic
(``audit``, ``checkpoints``) to the database, the anchor file and the key files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fairlens_monitor import anchor
from fairlens_monitor.audit import (
    GENESIS_HASH,
    AnchorClaim,
    AuditRecord,
    ChainReport,
    verify_chain,
)
from fairlens_monitor.checkpoints import (
    Checkpoint,
    claims,
    sign_checkpoint,
    verify_prune,
    verify_restore,
)
from fairlens_monitor.crypto import load_public_key
from fairlens_monitor.errors import CannotVerifyError
from fairlens_monitor.render import audit_json
from fairlens_monitor.store.repository import Repository
from fairlens_monitor.store.rowstore import check_rows


@dataclass(frozen=True)
class TrailReport:
    """A chain report plus where its anchors came from."""

    chain: ChainReport
    anchor_file: Path
    anchor_checkpoints: int
    database_checkpoints: int
    superseded: int = 0  # anchor checkpoints of history lost before a signed restore


def verify_store(repo: Repository, *, anchor_file: Path, public_key: Path,
                 up_to_seq: int | None = None) -> TrailReport:
    """Verify the whole chain and every checkpoint (anchor file and database).

    Args:
        repo: the repository (read-only is enough).
        anchor_file: the append-only anchor file.
        public_key: the Ed25519 public key that signed the checkpoints.
        up_to_seq: verify a snapshot taken at this head (a backup): anchor-file checkpoints
            signed after it (higher seq) are set aside instead of reported as truncation.

    Returns:
        The report; an unreadable anchor line counts as a ``bad_checkpoint``.

    Raises:
        CannotVerifyError: checkpoints exist but the public key is missing or unusable, or
            the database records checkpoints while the anchor file is missing.
        KeyFileError: the public key file is not an Ed25519 key.
    """
    contents = anchor.read(anchor_file)
    if up_to_seq is not None:
        contents = anchor.AnchorContents([c for c in contents.checkpoints if c.seq <= up_to_seq],
                                         contents.bad_lines)
    stored = repo.checkpoints()
    if stored and not anchor_file.exists():
        raise CannotVerifyError(f"the database records {len(stored)} checkpoints but the "
                                f"anchor file {anchor_file} is missing", "pass --anchor FILE")
    anchors: list[AnchorClaim] = []
    start, superseded = (1, GENESIS_HASH), 0
    if contents.checkpoints or stored or contents.bad_lines:
        if not public_key.exists():
            raise CannotVerifyError(f"checkpoints exist but the public key {public_key} is "
                                    "missing", "pass --public-key FILE")
        key = load_public_key(public_key)
        kept, superseded, restore_claims = _apply_restores(repo, key, contents.checkpoints)
        start, prune_claims = _prune_start(repo, key)
        contents = anchor.AnchorContents(kept, contents.bad_lines)
        anchors = claims(key, contents.checkpoints, anchor_file.name) + claims(
            key, stored, "database checkpoints") + restore_claims + prune_claims
    anchors += [AnchorClaim(0, "", False, f"{anchor_file.name} line {n} (unreadable)")
                for n in contents.bad_lines]
    report = verify_chain(repo.iter_stored(), repo.iter_links(), anchors, start)
    # Every stored row against the digest its transaction's event recorded (rowcheck).
    rows = check_rows(repo.engine, pruned_to=start[0] - 1)
    if rows:
        report = replace(report, anomalies=report.anomalies + rows)
    return TrailReport(report, anchor_file, len(contents.checkpoints), len(stored),
                       superseded)


def _prune_start(repo: Repository, key: Ed25519PublicKey
                 ) -> tuple[tuple[int, str], list[AnchorClaim]]:
    """Where the chain must start: after the newest signed ``chain_pruned`` statement.

    Retention deletes events up to a signed checkpoint N and appends ``chain_pruned`` (N and
    the hash at N, signed with the checkpoint key). The chain must then start at N + 1 with
    that hash as ``prev_hash``; without a valid statement it must start at seq 1, so deleting
    old events any other way is a ``gap``.
    """
    start, bad = (1, GENESIS_HASH), []
    for seq, payload in repo.events_of_type("chain_pruned"):
        if not verify_prune(key, payload):
            bad.append(AnchorClaim(seq, "", False, f"chain_pruned at seq {seq} "
                                                   "(signature does not verify)"))
            continue
        start = max(start, (int(payload["pruned_to"]) + 1, str(payload["head_hash"])))
    return start, bad


def _apply_restores(repo: Repository, key: Ed25519PublicKey, checkpoints: list[Checkpoint]
                    ) -> tuple[list[Checkpoint], int, list[AnchorClaim]]:
    """Set aside anchor checkpoints that a signed ``chain_restored`` event declares lost.

    A restore from a backup at seq N leaves the anchor file with checkpoints of history
    after N that is gone. The restore event (in the chain, signed with the checkpoint key)
    names N, the hash at N and the highest anchored seq it supersedes; checkpoints with
    N < seq <= that bound and signed *before* the restore are set aside. A restore event
    with a bad signature is itself reported as a ``bad_checkpoint``.
    """
    kept, superseded, bad = list(checkpoints), 0, []
    for seq, payload in repo.events_of_type("chain_restored"):
        if not verify_restore(key, payload):
            bad.append(AnchorClaim(seq, "", False, f"chain_restored at seq {seq} "
                                                   "(signature does not verify)"))
            continue
        low, high = int(payload["from_seq"]), int(payload["superseded_to"])
        restored_at = str(payload["ts"])
        before = len(kept)
        kept = [cp for cp in kept if not (low < cp.seq <= high and cp.ts < restored_at)]
        superseded += before - len(kept)
    return kept, superseded, bad


def write_checkpoint(repo: Repository, key: Ed25519PrivateKey, *, anchor_file: Path,
                     ts: str) -> Checkpoint | None:
    """Sign the current chain head, record it in the database, then append it to the anchor.

    Args:
        repo: the repository.
        key: the Ed25519 signing key.
        anchor_file: the anchor file to append to.
        ts: RFC 3339 time of signing.

    Returns:
        The checkpoint, or None when the chain is empty or the head is already anchored.

    Raises:
        OSError: the anchor file cannot be written (the database row is then already there,
            and the next checkpoint will cover its seq).
    """
    seq, head_hash = repo.head()
    if seq == 0 or repo.last_checkpoint_seq() >= seq:
        return None
    cp = sign_checkpoint(key, seq=seq, head_hash=head_hash, ts=ts)
    repo.save_checkpoint(cp)
    anchor.append(anchor_file, cp)
    return cp


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


@dataclass(frozen=True)
class EntryProof:
    """Where one record stands in the verified chain."""

    record: AuditRecord | None
    chain: ChainReport
    covered_by: int | None  # seq of the first valid checkpoint at or after the record

    @property
    def proven(self) -> bool:
        """True when the record exists and the chain verifies at least up to it."""
        return self.record is not None and self.chain.last_verified_seq >= self.record.seq


def prove_entry(repo: Repository, hash_hex: str, *, anchor_file: Path,
                public_key: Path) -> EntryProof:
    """Show that the record with ``hash_hex`` is part of an intact chain.

    Args:
        repo: the repository.
        hash_hex: the record's hash (64 hex digits).
        anchor_file: the anchor file.
        public_key: the checkpoint public key.

    Returns:
        The proof; ``proven`` is False when the hash is unknown or the chain is broken at or
        before the record.
    """
    record = repo.find_event(hash_hex.strip().lower())
    trail = verify_store(repo, anchor_file=anchor_file, public_key=public_key)
    covered = None
    if record is not None and trail.chain.anchored_seq >= record.seq:
        covered = trail.chain.anchored_seq
    return EntryProof(record, trail.chain, covered)


def export_jsonl(repo: Repository, path: Path) -> int:
    """Write the chain as JSON lines in the original audit format, plus the chain fields.

    Each line: ``timestamp``, ``event_type``, ``details`` (as in the original spec) and
    ``seq``, ``actor``, ``prev_hash``, ``hash``, ``canonical`` — the exact hashed bytes, so
    the export verifies offline with the standard library alone (see README).

    Args:
        repo: the repository.
        path: the file to write (replaced).

    Returns:
        The number of events written.
    """
    count = 0
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for rec in repo.iter_records("seq"):
            doc = {**audit_json(rec), "canonical": rec.canonical}
            handle.write(json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
    tmp.replace(path)
    return count
