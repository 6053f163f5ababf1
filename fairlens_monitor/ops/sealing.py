"""Checkpoints signed inside the transaction they protect: the **log** step's sealing policy.

simulate → measure → detect → alert → **log**. A cycle signs the chain head in the same
transaction as its rows when it opens or resolves an alert, when ``audit.checkpoint_every``
events came after the newest checkpoint, or when it ends ``audit.checkpoint_seconds`` or more
after that checkpoint (or there is none yet). So an alert never commits without the
checkpoint that protects it, and at most ``checkpoint_seconds`` of history is protected by
the hash chain alone. The anchor line is appended right after the commit; when that fails,
the next checkpoint appends it (``trail.reconcile_anchor``). :func:`seal_due` is the pure
decision; :class:`Sealer` applies it inside the repository's transaction.

Events written outside a cycle go through :meth:`Sealer.attach`: every write transaction of
the repository that appends events ends by signing, in that transaction, when it appended an
event that is not :data:`ROUTINE` (a daemon's start, stop or takeover, a rule change, a key
rotation, retention, a new chain: rare, and each one worth protecting at once), or when the
policy above says a checkpoint is due (failed and missed cycles and backups, like cycles).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event
from sqlalchemy.orm import Session

from fairlens_monitor.audit.chain import AuditRecord
from fairlens_monitor.audit.checkpoints import NO_PREVIOUS, Checkpoint, digest, sign_checkpoint
from fairlens_monitor.audit.events import (
    BACKUP_FAILED,
    BACKUP_MADE,
    CYCLE_COMPLETED,
    CYCLE_FAILED,
    CYCLE_MISSED,
    NOTIFICATION_DELIVERED,
    NOTIFICATION_FAILED,
    SOURCE_FILE_CHANGED,
)
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.errors import AnchorWriteError
from fairlens_monitor.ops.audit_trail import append_anchor
from fairlens_monitor.store.chainstore import add_checkpoint, last_checkpoint_in
from fairlens_monitor.store.cyclewrite import APPENDED, AlertChange
from fairlens_monitor.store.repository import Repository

log = logging.getLogger(__name__)

TRANSITIONS = ("open", "resolve")  # alert changes that are signed in their own transaction
# Events sealed only when the policy says a checkpoint is due: a cycle's own records, and the
# record of a backup (restoring that very backup always loses it: signed at once, it would
# make every restore of the newest backup a loss of anchored history). Every other event is
# signed in the transaction that appends it (see the module docstring).
ROUTINE = frozenset(
    {
        CYCLE_COMPLETED,
        CYCLE_FAILED,
        CYCLE_MISSED,
        SOURCE_FILE_CHANGED,
        BACKUP_MADE,
        BACKUP_FAILED,
        NOTIFICATION_DELIVERED,  # one per delivery attempt: sealed by the policy, like cycles
        NOTIFICATION_FAILED,
    }
)
# Session.info keys: the attached sealer; "this transaction's checkpoint was decided by the
# caller" (a cycle, a person's transition); the checkpoint to anchor after the commit.
_SEALER, _DECIDED, _SIGNED = "fairlens_sealer", "fairlens_sealed", "fairlens_signed"


def seal_due(
    *,
    last: Checkpoint | None,
    head_seq: int,
    head_ts: str,
    transition: bool,
    every: int,
    seconds: float,
) -> bool:
    """Decide whether the cycle that ends at ``head_seq`` signs a checkpoint.

    Args:
        last: the newest recorded checkpoint (None when there is none).
        head_seq: the chain head after the cycle's events.
        head_ts: the RFC 3339 time of those events.
        transition: the cycle opened or resolved an alert.
        every: ``audit.checkpoint_every``.
        seconds: ``audit.checkpoint_seconds``.

    Returns:
        True when a checkpoint is due.
    """
    if last is None or transition or head_seq - last.seq >= every:
        return head_seq > (0 if last is None else last.seq)
    try:
        age = (_when(head_ts) - _when(last.ts)).total_seconds()
    except ValueError:  # an unreadable time on the last checkpoint: sign rather than guess
        return True
    return age >= seconds and head_seq > last.seq


def _when(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Sealer:
    """Signs a due checkpoint inside a cycle's transaction and anchors it after the commit."""

    key: Ed25519PrivateKey
    anchor_file: Path
    every: int
    seconds: float

    def __call__(
        self, s: Session, head: AuditRecord, changes: Sequence[AlertChange]
    ) -> Checkpoint | None:
        """Sign and record a checkpoint of ``head`` in session ``s`` when one is due.

        Args:
            s: the cycle's (serialised) write session.
            head: the last audit record the cycle appended.
            changes: the cycle's alert transitions.

        Returns:
            The checkpoint recorded, or None.
        """
        s.info[_DECIDED] = True
        last = last_checkpoint_in(s)
        if not seal_due(
            last=last,
            head_seq=head.seq,
            head_ts=head.ts,
            transition=any(c.action in TRANSITIONS for c in changes),
            every=self.every,
            seconds=self.seconds,
        ):
            return None
        return self._sign(s, head, last)

    def now(self, s: Session, head: AuditRecord) -> Checkpoint:
        """Sign and record a checkpoint of ``head`` in session ``s`` unconditionally.

        For a person's alert transition (``alerts ack``/``resolve``): like a cycle's alert
        opening, it never commits without the checkpoint that protects it.

        Args:
            s: the transition's (serialised) write session.
            head: the transition's audit record.

        Returns:
            The checkpoint recorded.
        """
        s.info[_DECIDED] = True
        return self._sign(s, head, last_checkpoint_in(s))

    def attach(self, repo: Repository) -> Sealer:
        """Seal every write transaction of ``repo`` that appends audit events.

        Before each commit: sign the new head when the transaction appended a
        non-:data:`ROUTINE` event or a checkpoint is due; after the commit, anchor it. A
        transaction whose caller already decided (a cycle, :meth:`now`) is left alone.

        Args:
            repo: the repository (writable); attaching again replaces the sealer.

        Returns:
            This sealer.
        """
        repo.sessions.configure(info={_SEALER: self})
        # Our own mark, not event.contains: SQLAlchemy's registry is keyed by id(), and a new
        # sessionmaker at the address of a collected one could read as already listened to.
        if getattr(repo.sessions, _LISTENING, None) is not repo.sessions.class_:
            for name, listener in (
                ("before_commit", _seal_before_commit),
                ("after_commit", _anchor_after_commit),
                ("after_rollback", _forget),
            ):
                event.listen(repo.sessions, name, listener)
            setattr(repo.sessions, _LISTENING, repo.sessions.class_)
        return self

    def _sign(self, s: Session, head: AuditRecord, last: Checkpoint | None) -> Checkpoint:
        cp = sign_checkpoint(
            self.key,
            seq=head.seq,
            head_hash=head.hash,
            ts=head.ts,
            prev=NO_PREVIOUS if last is None else digest(last),
        )
        add_checkpoint(s, cp)
        return cp

    @classmethod
    def of(cls, settings: Settings, key: Ed25519PrivateKey) -> Sealer:
        """The sealer the settings ask for (``audit`` section), signing with ``key``."""
        audit = settings.audit
        return cls(key, audit.anchor_file, audit.checkpoint_every, audit.checkpoint_seconds)

    def anchor(self, cp: Checkpoint) -> None:
        """Append a committed checkpoint to the anchor file; a failure is logged (one line)
        and repaired by the next checkpoint, which appends what the file lacks."""
        try:
            append_anchor(self.anchor_file, cp)
        except AnchorWriteError as exc:
            log.error("%s", exc)


_LISTENING = "_fairlens_sealing_listens_on"  # sessionmaker attribute: the class listened on


def _seal_before_commit(s: Session) -> None:
    """Sign the head this transaction appended, when it must be (see :meth:`Sealer.attach`)."""
    sealer, records = s.info.get(_SEALER), s.info.pop(APPENDED, None)
    if not isinstance(sealer, Sealer) or not records or s.info.pop(_DECIDED, False):
        return
    head, last = records[-1], last_checkpoint_in(s)
    if last is not None and last.seq >= head.seq:
        return
    if all(r.event_type in ROUTINE for r in records) and not seal_due(
        last=last,
        head_seq=head.seq,
        head_ts=head.ts,
        transition=False,
        every=sealer.every,
        seconds=sealer.seconds,
    ):
        return
    s.info[_SIGNED] = sealer._sign(s, head, last)


def _anchor_after_commit(s: Session) -> None:
    cp, sealer = s.info.pop(_SIGNED, None), s.info.get(_SEALER)
    if isinstance(cp, Checkpoint) and isinstance(sealer, Sealer):
        sealer.anchor(cp)


def _forget(s: Session) -> None:
    for key in (APPENDED, _DECIDED, _SIGNED):
        s.info.pop(key, None)
