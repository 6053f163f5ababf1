"""Checkpoints signed inside a cycle's own transaction: the **log** step's sealing policy.

simulate → measure → detect → alert → **log**. A cycle signs the chain head in the same
transaction as its rows when it opens or resolves an alert, when ``audit.checkpoint_every``
events came after the newest checkpoint, or when it ends ``audit.checkpoint_seconds`` or more
after that checkpoint (or there is none yet). So an alert never commits without the
checkpoint that protects it, and at most ``checkpoint_seconds`` of history is protected by
the hash chain alone. The anchor line is appended right after the commit; when that fails,
the next checkpoint appends it (``trail.reconcile_anchor``). :func:`seal_due` is the pure
decision; :class:`Sealer` applies it inside the repository's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from fairlens_monitor.audit import AuditRecord
from fairlens_monitor.checkpoints import NO_PREVIOUS, Checkpoint, digest, sign_checkpoint
from fairlens_monitor.config import Settings
from fairlens_monitor.errors import AnchorWriteError
from fairlens_monitor.store.cyclewrite import AlertChange
from fairlens_monitor.store.repository import add_checkpoint, last_checkpoint_in
from fairlens_monitor.trail import append_anchor

log = logging.getLogger(__name__)

TRANSITIONS = ("open", "resolve")  # alert changes that are signed in their own transaction


def seal_due(*, last: Checkpoint | None, head_seq: int, head_ts: str, transition: bool,
             every: int, seconds: float) -> bool:
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

    def __call__(self, s: Session, head: AuditRecord,
                 changes: Sequence[AlertChange]) -> Checkpoint | None:
        """Sign and record a checkpoint of ``head`` in session ``s`` when one is due.

        Args:
            s: the cycle's (serialised) write session.
            head: the last audit record the cycle appended.
            changes: the cycle's alert transitions.

        Returns:
            The checkpoint recorded, or None.
        """
        last = last_checkpoint_in(s)
        if not seal_due(last=last, head_seq=head.seq, head_ts=head.ts,
                        transition=any(c.action in TRANSITIONS for c in changes),
                        every=self.every, seconds=self.seconds):
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
        return self._sign(s, head, last_checkpoint_in(s))

    def _sign(self, s: Session, head: AuditRecord, last: Checkpoint | None) -> Checkpoint:
        cp = sign_checkpoint(self.key, seq=head.seq, head_hash=head.hash, ts=head.ts,
                             prev=NO_PREVIOUS if last is None else digest(last))
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
