"""Verification of the audit trail at the I/O edge: the chain, its checkpoints, one entry.

simulate → measure → detect → alert → **log**, checked. Joins the pure chain and checkpoint
logic (:mod:`fairlens_monitor.audit`) to the database, the anchor file and the public key:
``verify_store`` (what ``verify`` reports), ``verify_copy`` (a backup at its own head),
``prove_entry`` (``verify-entry``) and ``anchored_beyond`` (what a restore would lose).
Writing checkpoints and starting a chain is :mod:`fairlens_monitor.ops.audit_trail`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fairlens_monitor.audit import anchor
from fairlens_monitor.audit.chain import GENESIS_HASH, AuditRecord
from fairlens_monitor.audit.checkpoints import (
    Checkpoint,
    claims,
    verify_prune,
    verify_restore,
)
from fairlens_monitor.audit.events import CHAIN_PRUNED, CHAIN_RESTORED
from fairlens_monitor.audit.verify import AnchorClaim, Anomaly, ChainReport
from fairlens_monitor.errors import CannotVerifyError
from fairlens_monitor.security.crypto import SIGNING_KEY_FILE, load_public_key
from fairlens_monitor.store.chainwalk import walk_chain
from fairlens_monitor.store.db import make_engine
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
    # ``restored_loss``: each anchored checkpoint a signed restore accepted to lose; listed
    # always, without changing the verdict (an unaccepted loss is an anomaly instead)
    warnings: tuple[Anomaly, ...] = ()
    # how the chain was walked: "full" (from ``from_seq``: 1, or after a signed prune) or
    # "incremental" (from the signed checkpoint at ``checkpoint_seq``; ops.incremental);
    # ``note`` says why a walk asked to be incremental was full
    walk: str = "full"
    from_seq: int = 1
    checkpoint_seq: int | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """Return the report as plain data: the ``verify --json`` document."""
        report = self.chain
        first = report.anomalies[0] if report.anomalies else None
        return {
            "intact": report.intact,
            "count": report.count,
            "head_seq": report.head_seq,
            "head_hash": report.head_hash,
            "last_verified_seq": report.last_verified_seq,
            "anchored_seq": report.anchored_seq,
            "unanchored_events": report.unanchored,
            "checkpoints_checked": report.checkpoints_checked,
            "anchor_file_checkpoints": self.anchor_checkpoints,
            "database_checkpoints": self.database_checkpoints,
            "superseded_checkpoints": self.superseded,
            "anchor_file": str(self.anchor_file),
            "first_broken_seq": first.seq if first else None,
            "anomalies": [vars(a) for a in report.anomalies],
            "warnings": [vars(w) for w in self.warnings],
            "walk": self.walk,
            "from_seq": self.from_seq,
            "checkpoint_seq": self.checkpoint_seq,
            "walk_note": self.note,
        }

    def intact_line(self) -> str:
        """Return the one-line verdict of an intact chain (what ``verify`` prints)."""
        report = self.chain
        walked = (
            f"{report.count} events from the signed checkpoint at seq {self.checkpoint_seq} on"
            if self.walk == "incremental"
            else f"{report.count} events"
        )
        return (
            f"audit chain intact: {walked}, head seq {report.head_seq} "
            f"{report.head_hash}; checkpoints verified: {self.anchor_checkpoints} in "
            f"the anchor file, {self.database_checkpoints} in the database; "
            f"anchored up to seq {report.anchored_seq}, {report.unanchored} events "
            "not yet anchored"
            + (
                f"; {self.superseded} checkpoints of history lost before a signed restore set aside"
                if self.superseded
                else ""
            )
        )


@dataclass(frozen=True)
class CopyCheck:
    """A SQLite copy (a backup) verified at its own head."""

    head_seq: int
    head_hash: str
    report: ChainReport
    lost: list[int]  # anchored seqs above the copy's head (what restoring it loses), if counted


def verify_copy(
    path: Path, *, anchor_file: Path, public_key: Path, count_loss: bool = False
) -> CopyCheck:
    """Verify a SQLite copy of the database at its own head: the one check of a copy.

    A backup is a snapshot: anchor-file checkpoints signed after its head are set aside
    (they are what restoring it would lose, listed in ``lost``), not reported as
    truncation. The copy is opened read-only.

    Args:
        path: the SQLite file.
        anchor_file: the anchor file.
        public_key: the checkpoint public key.
        count_loss: also list the anchored seqs above the copy's head (a restore needs
            them; a backup does not, and is spared a second reading of the anchor file).

    Returns:
        The copy's head, its chain report and (with ``count_loss``) the anchored seqs above
        its head, else an empty list.

    Raises:
        CannotVerifyError, KeyFileError: as :func:`verify_store`.
        StoreError: the file cannot be opened as a database.
    """
    repo = Repository(make_engine(f"sqlite:///{path}", readonly=True))
    try:
        seq, head_hash = repo.head()
        report = verify_store(
            repo, anchor_file=anchor_file, public_key=public_key, up_to_seq=seq
        ).chain
        lost = anchored_beyond(repo, anchor_file, public_key, seq) if count_loss else []
    finally:
        repo.engine.dispose()
    return CopyCheck(seq, head_hash, report, lost)


def verify_store(
    repo: Repository,
    *,
    anchor_file: Path,
    public_key: Path,
    up_to_seq: int | None = None,
    checkpoint_every: int | None = None,
) -> TrailReport:
    """Verify the whole chain and every checkpoint (anchor file and database).

    Args:
        repo: the repository (read-only is enough).
        anchor_file: the append-only anchor file.
        public_key: the Ed25519 public key that signed the checkpoints.
        up_to_seq: verify a snapshot taken at this head (a backup): anchor-file checkpoints
            signed after it (higher seq) are set aside instead of reported as truncation.
        checkpoint_every: ``audit.checkpoint_every``. With it, a chain of at least that many
            events whose signing key exists (the public key file, or the private key beside
            it, is there: deleting only the public key does not hide it) but that has no
            checkpoint anywhere was stripped of its checkpoints: ``missing_checkpoint``
            (exit 1), or, when the anchor file is gone too, :class:`CannotVerifyError`.

    Returns:
        The report; an unreadable anchor line counts as a ``bad_checkpoint``.

    Raises:
        CannotVerifyError: checkpoints exist but the public key is missing or unusable, or
            the anchor file is missing while the database records checkpoints or (see
            ``checkpoint_every``) must have had them.
        KeyFileError: the public key file is not an Ed25519 key.
    """
    contents = read_anchor(anchor_file)
    if up_to_seq is not None:
        contents = anchor.AnchorContents(
            [c for c in contents.checkpoints if c.seq <= up_to_seq], contents.bad_lines
        )
    stored = repo.checkpoints()
    if stored and not anchor_file.exists():
        raise CannotVerifyError(
            f"the database records {len(stored)} checkpoints but the "
            f"anchor file {anchor_file} is missing",
            "pass --anchor FILE",
        )
    anchors: list[AnchorClaim] = []
    start, superseded = (1, GENESIS_HASH), 0
    warnings: list[Anomaly] = []
    if contents.checkpoints or stored or contents.bad_lines:
        if not public_key.exists():
            raise CannotVerifyError(
                f"checkpoints exist but the public key {public_key} is missing",
                "pass --public-key FILE",
            )
        vouched = key_claims(
            repo, load_public_key(public_key), contents.checkpoints, stored, anchor_file.name
        )
        warnings, superseded, start = vouched.warnings, len(vouched.warnings), vouched.start
        contents = anchor.AnchorContents(vouched.kept, contents.bad_lines)
        anchors = vouched.signed + vouched.statements
    anchors += unreadable_lines(contents, anchor_file)
    # one read of every event, split over the cores when it pays (store.chainwalk); the row
    # check's ledger is read during that walk (store.rowtap)
    report, tap = walk_chain(repo, anchors, start)
    signing_key = public_key.exists() or (public_key.parent / SIGNING_KEY_FILE).exists()
    if (
        checkpoint_every is not None
        and not anchors
        and signing_key
        and report.head_seq >= max(checkpoint_every, start[0])
    ):
        report = _stripped(report, anchor_file, checkpoint_every)
    # Every stored row against the digest its transaction's event recorded (rowcheck).
    rows = check_rows(
        repo.bind or repo.engine, pruned_to=start[0] - 1, book=tap.ledger(start[0] - 1)
    )
    if rows:
        report = replace(report, anomalies=report.anomalies + rows)
    return TrailReport(
        report,
        anchor_file,
        len(contents.checkpoints),
        len(stored),
        superseded,
        tuple(warnings),
        from_seq=start[0],
    )


@dataclass(frozen=True)
class KeyClaims:
    """What the checkpoint key vouches for, as a walk checks it (:func:`key_claims`)."""

    kept: list[Checkpoint]  # anchor-file checkpoints no signed restore set aside
    warnings: list[Anomaly]  # ``restored_loss``: each one a signed restore set aside
    signed: list[AnchorClaim]  # every kept and every stored checkpoint, signature checked
    statements: list[AnchorClaim]  # restore and prune statements whose signature fails
    start: tuple[int, str]  # where the chain must start (after a signed prune)


def key_claims(
    repo: Repository,
    key: Ed25519PublicKey,
    checkpoints: list[Checkpoint],
    stored: list[Checkpoint],
    anchor_name: str,
) -> KeyClaims:
    """The claims a walk (whole or incremental) checks against the chain.

    Args:
        repo: the repository (its signed restore and prune statements are read).
        key: the checkpoint public key.
        checkpoints: the anchor file's checkpoints.
        stored: the database's checkpoints.
        anchor_name: the anchor file's name, for the claims' sources.
    """
    kept, warnings, restore_claims = _apply_restores(repo, key, checkpoints)
    start, prune_claims = _prune_start(repo, key)
    signed = claims(key, kept, anchor_name) + claims(key, stored, "database checkpoints")
    return KeyClaims(kept, warnings, signed, restore_claims + prune_claims, start)


def unreadable_lines(contents: anchor.AnchorContents, anchor_file: Path) -> list[AnchorClaim]:
    """One failing claim per anchor-file line that could not be read."""
    return [
        AnchorClaim(0, "", False, f"{anchor_file.name} line {n} (unreadable)")
        for n in contents.bad_lines
    ]


def read_anchor(anchor_file: Path) -> anchor.AnchorContents:
    """The anchor file's checkpoints (and unreadable lines).

    Raises:
        CannotVerifyError: the file cannot be read (a missing file reads as empty).
    """
    try:
        return anchor.read(anchor_file)
    except OSError as exc:
        raise CannotVerifyError(
            f"the anchor file {anchor_file} cannot be read ({exc.strerror or type(exc).__name__})",
            "pass --anchor FILE",
        ) from None


def _stripped(report: ChainReport, anchor_file: Path, every: int) -> ChainReport:
    """A chain past its first checkpoint interval, signed by a key that exists, with no
    checkpoint in the database nor in the anchor file: they were removed."""
    if not anchor_file.exists():
        raise CannotVerifyError(
            f"the chain has {report.head_seq} events and a signing key, so checkpoints were "
            f"written, but the anchor file {anchor_file} is gone and the database holds none",
            "restore the anchor file (or pass --anchor FILE); until then nothing after genesis "
            "can be trusted",
        )
    lost = Anomaly(
        every,
        "missing_checkpoint",
        f"no checkpoint anywhere although the chain passed seq {every} "
        "(audit.checkpoint_every) with a signing key: they were removed",
    )
    return replace(
        report,
        anomalies=sorted([*report.anomalies, lost], key=lambda a: (a.seq, a.kind)),
        last_verified_seq=0,
        anchored_seq=0,
    )


def _prune_start(
    repo: Repository, key: Ed25519PublicKey
) -> tuple[tuple[int, str], list[AnchorClaim]]:
    """Where the chain must start: after the newest signed ``chain_pruned`` statement.

    Retention deletes events up to a signed checkpoint N and appends ``chain_pruned`` (N and
    the hash at N, signed with the checkpoint key). The chain must then start at N + 1 with
    that hash as ``prev_hash``; without a valid statement it must start at seq 1, so deleting
    old events any other way is a ``gap``.
    """
    start, bad = (1, GENESIS_HASH), []
    for seq, payload in repo.events_of_type(CHAIN_PRUNED):
        if not verify_prune(key, payload):
            bad.append(
                AnchorClaim(
                    seq, "", False, f"chain_pruned at seq {seq} (signature does not verify)"
                )
            )
            continue
        start = max(start, (int(payload["pruned_to"]) + 1, str(payload["head_hash"])))
    return start, bad


def _apply_restores(
    repo: Repository, key: Ed25519PublicKey, checkpoints: list[Checkpoint]
) -> tuple[list[Checkpoint], list[Anomaly], list[AnchorClaim]]:
    """Set aside anchor checkpoints that a signed ``chain_restored`` event declares lost.

    A restore from a backup at seq N leaves the anchor file with checkpoints of history
    after N that is gone. The restore event (in the chain, signed with the checkpoint key)
    names N, the hash at N and the highest anchored seq it supersedes; checkpoints with
    N < seq <= that bound and signed *before* the restore are set aside. A restore event
    with a bad signature is itself reported as a ``bad_checkpoint``.
    """
    kept, lost, bad = list(checkpoints), [], []
    for seq, payload in repo.events_of_type(CHAIN_RESTORED):
        if not verify_restore(key, payload):
            bad.append(
                AnchorClaim(
                    seq, "", False, f"chain_restored at seq {seq} (signature does not verify)"
                )
            )
            continue
        low, high = int(payload["from_seq"]), int(payload["superseded_to"])
        restored_at = str(payload["ts"])
        named = payload.get("lost_checkpoints")  # signed since 0.9: exactly these seqs
        accepted = {int(n) for n in named} if isinstance(named, list) else None
        keep = []
        for cp in kept:
            if (
                low < cp.seq <= high
                and cp.ts < restored_at
                and (accepted is None or cp.seq in accepted)
            ):
                lost.append(
                    Anomaly(
                        cp.seq,
                        "restored_loss",
                        f"anchored history up to seq {cp.seq} was lost by the "
                        f"restore recorded at seq {seq} (from a backup at seq "
                        f"{low}), accepted in its signed statement",
                    )
                )
            else:
                keep.append(cp)
        kept = keep
    return kept, lost, bad


def anchored_beyond(
    repo: Repository, anchor_file: Path, public_key: Path, from_seq: int
) -> list[int]:
    """The anchored checkpoints a restore of ``repo`` (a backup at ``from_seq``) would lose.

    Checkpoints an earlier signed restore inside the backup already set aside are not
    counted again.

    Returns:
        The seqs, ascending, of the anchor file's checkpoints above ``from_seq``.

    Raises:
        CannotVerifyError: the anchor file cannot be read (or is a FIFO or device).
    """
    try:
        checkpoints = [cp for cp in anchor.read(anchor_file).checkpoints if cp.seq > from_seq]
    except OSError as exc:
        raise CannotVerifyError(
            f"the anchor file {anchor_file} cannot be read ({exc.strerror or type(exc).__name__})",
            "pass --anchor FILE",
        ) from None
    if checkpoints and public_key.exists():
        checkpoints = _apply_restores(repo, load_public_key(public_key), checkpoints)[0]
    return sorted({cp.seq for cp in checkpoints})


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


def prove_entry(
    repo: Repository,
    hash_hex: str,
    *,
    anchor_file: Path,
    public_key: Path,
    checkpoint_every: int | None = None,
) -> EntryProof:
    """Show that the record with ``hash_hex`` is part of an intact chain.

    Args:
        repo: the repository.
        hash_hex: the record's hash (64 hex digits).
        anchor_file: the anchor file.
        public_key: the checkpoint public key.
        checkpoint_every: ``audit.checkpoint_every`` (see :func:`verify_store`).

    Returns:
        The proof; ``proven`` is False when the hash is unknown or the chain is broken at or
        before the record.
    """
    record = repo.find_event(hash_hex.strip().lower())
    trail = verify_store(
        repo, anchor_file=anchor_file, public_key=public_key, checkpoint_every=checkpoint_every
    )
    covered = None
    if record is not None and trail.chain.anchored_seq >= record.seq:
        covered = trail.chain.anchored_seq
    return EntryProof(record, trail.chain, covered)
