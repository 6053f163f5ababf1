"""Incremental verification: walk only the events after a signed checkpoint already walked.

simulate → measure → detect → alert → **log**, checked often and cheaply. A full walk
(:func:`~fairlens_monitor.ops.verification.verify_store`) reads the whole chain; the trend
page and the daemon verify every few minutes, so they start instead from the newest signed
checkpoint at or below the seq their previous walk verified (``verified_to``):

1. every checkpoint's signature is checked as in a full walk (one Ed25519 check per chain
   of checkpoints, ``checkpoints.claims``); the start is the newest one that verifies, is
   not set aside by a signed restore and is not below a signed prune's start;
2. the walk starts *at* that checkpoint's seq, with the stored record's ``prev_hash``: the
   checkpoint's claim is checked against the record's hash like every other claim, so a
   record rewritten at that seq is ``bad_checkpoint`` (rehashed) or ``modified`` (not),
   and a record that is gone (or stored out of place) makes the walk a full one (which
   reports the gap or the truncation exactly);
3. every later checkpoint (anchor file and database) must match the chain walked, so a
   deleted tail is ``truncated`` as in a full walk;
4. the row checks cover every row an event from that seq on names (its digest, or
   ``row_missing``) and, for the insert-only tables (runs, readings, group results),
   every row from the lowest such id up (a row no event names is ``row_unrecorded``). The
   ledger and the rows are read in one snapshot.

What it does not see: an edit before the start checkpoint that leaves the stored hashes
alone (a row's columns, a record's payload), or an alert or file record inserted without an
event. That is what the full walk is for: on demand (``verify``) and at least once a day
(:class:`WalkState`), kept in the verifier's memory only (the page is read-only).
"""

from __future__ import annotations

import itertools
from collections.abc import Generator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection

from fairlens_monitor.audit.chain import StoredRecord
from fairlens_monitor.audit.rowcheck import RowLedger
from fairlens_monitor.audit.rowforms import TABLES
from fairlens_monitor.audit.verify import Anomaly, verify_chain
from fairlens_monitor.ops.verification import (
    TrailReport,
    key_claims,
    read_anchor,
    unreadable_lines,
    verify_store,
)
from fairlens_monitor.security.crypto import load_public_key
from fairlens_monitor.store.repository import Repository
from fairlens_monitor.store.rowstore import ledger, rows_named

# Tables whose rows are only ever inserted (ids in commit order, so in seq order): every row
# above the lowest id an event after the checkpoint names was written after it.
INSERT_ONLY = ("runs", "readings", "group_results")
FULL_WALK_EVERY = timedelta(hours=24)


def verify_incremental(
    repo: Repository,
    *,
    anchor_file: Path,
    public_key: Path,
    verified_to: int | None = None,
    checkpoint_every: int | None = None,
) -> TrailReport:
    """Verify the chain from the newest signed checkpoint at or below ``verified_to``.

    Args:
        repo: the repository (read-only is enough).
        anchor_file: the anchor file.
        public_key: the checkpoint public key.
        verified_to: the highest seq a previous walk verified (the page and the daemon pass
            theirs); None starts from the newest signed checkpoint.
        checkpoint_every: ``audit.checkpoint_every``, for a full walk (see
            :func:`~fairlens_monitor.ops.verification.verify_store`).

    Returns:
        The report: ``walk`` is ``incremental`` with ``checkpoint_seq`` the start; or
        ``full`` (with ``note`` saying why) when no signed checkpoint can start the walk.

    Raises:
        CannotVerifyError, KeyFileError: as :func:`verify_store`.
    """

    def full(reason: str) -> TrailReport:
        trail = verify_store(
            repo,
            anchor_file=anchor_file,
            public_key=public_key,
            checkpoint_every=checkpoint_every,
        )
        return replace(trail, note=reason)

    contents = read_anchor(anchor_file)
    stored = repo.checkpoints()
    if not (contents.checkpoints or stored) or not public_key.exists():
        return full("no signed checkpoint to start from")
    if stored and not anchor_file.exists():
        return full("the anchor file is missing")  # verify_store says so
    vouched = key_claims(
        repo, load_public_key(public_key), contents.checkpoints, stored, anchor_file.name
    )
    start = vouched.start
    usable = [
        c
        for c in vouched.signed
        if c.signature_ok and c.seq >= start[0] and (verified_to is None or c.seq <= verified_to)
    ]
    if not usable:
        return full("no signed checkpoint at or below the seq verified before")
    begin = max(usable, key=lambda c: c.seq)
    stored_records = repo.iter_stored(from_seq=begin.seq)  # storage order: it comes first
    row = next(stored_records, None)  # the cursor's own tuple, in StoredRecord's order
    first = None if row is None else StoredRecord._make(row)
    if first is None or first.seq != begin.seq or type(first.prev_hash) is not str:
        if isinstance(stored_records, Generator):
            stored_records.close()
        return full(f"the record at the checkpoint's seq {begin.seq} is gone or moved")
    anchors = [*vouched.signed, *vouched.statements, *unreadable_lines(contents, anchor_file)]
    report = verify_chain(
        itertools.chain([first], stored_records),
        repo.iter_links(from_seq=begin.seq),
        anchors,
        (begin.seq, first.prev_hash),
    )
    rows = rows_since(repo, begin.seq)
    if rows:
        report = replace(report, anomalies=report.anomalies + rows)
    return TrailReport(
        report,
        anchor_file,
        len(vouched.kept),
        len(stored),
        len(vouched.warnings),
        tuple(vouched.warnings),
        walk="incremental",
        from_seq=begin.seq,
        checkpoint_seq=begin.seq,
    )


def rows_since(repo: Repository, seq: int) -> list[Anomaly]:
    """Check the rows that the events from ``seq`` on name, in one read snapshot.

    Returns:
        ``row_modified``, ``row_missing`` and ``row_unrecorded`` anomalies (see the module
        docstring for which rows are covered).
    """
    book = RowLedger()
    book.last_seq = seq - 1  # replay only the events from seq on
    with repo.engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # one snapshot for every statement below
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            return _check(conn, ledger(conn, into=book))


def _check(conn: Connection, book: RowLedger) -> list[Anomaly]:
    found = list(book.anomalies)
    for table in TABLES:
        named = book.rows[table]
        lowest = min(named) if table in INSERT_ONLY and named else None
        found += book.check(table, rows_named(conn, table, list(named), lowest))
    return found


@dataclass
class WalkState:
    """What a long-running verifier (the page, the daemon) remembers between walks.

    Kept in that process's memory only: the page is read-only (its database may be 0444 in
    a 0555 folder), and a timestamp written into the trail would be a claim, not a proof.
    """

    last_full: datetime | None = None  # when the last full walk started
    verified_to: int | None = None  # the highest seq the last walk verified
    intact: bool = False  # the last walk's verdict

    def full_due(self, now: datetime) -> bool:
        """Whether the next walk must be full: never walked whole, or not in the last 24 h,
        or the last walk found anomalies (a tampered trail stays reported until a full walk
        finds it intact again)."""
        return (
            self.last_full is None
            or self.verified_to is None
            or not self.intact
            or now - self.last_full >= FULL_WALK_EVERY
        )

    def record(self, walk: str, intact: bool, verified_to: int, started: datetime) -> None:
        """Remember a walk's outcome.

        Args:
            walk: ``full`` or ``incremental`` (the report's ``walk``).
            intact: its verdict.
            verified_to: its ``last_verified_seq``.
            started: when it started (the time a full walk is remembered by).
        """
        if walk == "full":
            self.last_full = started
        self.intact, self.verified_to = intact, verified_to
