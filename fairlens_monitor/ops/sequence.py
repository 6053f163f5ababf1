"""The one sequence every monitoring run follows: chain start → config change → cycle → seal.

simulate/read → measure → detect → alert → **log**, as an operation. ``once`` (the CLI) and
the daemon call these same steps, so a manual cycle and a scheduled one leave the same
trail: :func:`begin` refuses (or, asked, records) a new chain beside an old chain's anchor
file; :func:`~fairlens_monitor.ops.governance.record_config_change` puts a change of the rules on
the chain before the cycle that uses them; :func:`cycle` runs one cycle and signs a
checkpoint when one is due. :func:`run_once` is the whole sequence for one manual cycle; the
daemon runs :func:`begin` at start and :func:`cycle` on every fire, and adds what only a
long-running process has (scheduling, leadership, missed fires).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.ops.audit_trail import (
    check_chain_start,
    checkpoint_due,
    start_new_chain,
    write_checkpoint,
)
from fairlens_monitor.ops.cycle import Clock, CycleOutcome, FailedCycle, execute_cycle
from fairlens_monitor.ops.governance import record_config_change
from fairlens_monitor.ops.sealing import Sealer
from fairlens_monitor.security.crypto import AlertCipher
from fairlens_monitor.sources import DecisionSource
from fairlens_monitor.store.repository import Repository


def begin(
    settings: Settings, repo: Repository, *, new_chain: bool, actor: str, ts: str
) -> Path | None:
    """Check that this database's chain may start or continue here; record a new chain.

    Args:
        settings: validated settings (the anchor file).
        repo: the monitor's repository.
        new_chain: the database was lost and there is no backup: set the old chain's anchor
            file aside and record a new chain as its first event.
        actor: who starts (``cli`` or ``daemon``).
        ts: the RFC 3339 time of the ``chain_started`` event.

    Returns:
        Where the old chain's anchor file was set aside, or None when nothing was moved.

    Raises:
        ChainLostError: the chain is empty, the anchor file holds checkpoints, and
            ``new_chain`` is False.
    """
    anchor_file = settings.audit.anchor_file
    aside = start_new_chain(repo, anchor_file, actor=actor, ts=ts) if new_chain else None
    check_chain_start(repo, anchor_file)
    return aside


def seal_if_due(
    settings: Settings,
    repo: Repository,
    signer: Ed25519PrivateKey,
    *,
    ts: str,
    head_seq: int | None = None,
) -> bool:
    """Sign the chain head and append it to the anchor file when a checkpoint is due.

    Args:
        settings: validated settings (``audit.checkpoint_every``, the anchor file).
        repo: the monitor's repository.
        signer: the checkpoint signing key.
        ts: the checkpoint's RFC 3339 time.
        head_seq: the chain head when the caller knows it (None reads it).

    Returns:
        True when a checkpoint was written.
    """
    if not checkpoint_due(repo, settings.audit.checkpoint_every, head_seq=head_seq):
        return False
    write_checkpoint(repo, signer, anchor_file=settings.audit.anchor_file, ts=ts)
    return True


def cycle(
    settings: Settings,
    repo: Repository,
    cipher: AlertCipher,
    signer: Ed25519PrivateKey,
    *,
    clock: Clock,
    actor: str,
    seal_failed: Callable[[Exception], None] | None = None,
    sealer: Sealer | None = None,
    source: DecisionSource | None = None,
    scheduled_for: datetime | None = None,
    unrecorded: list[FailedCycle] | None = None,
) -> CycleOutcome:
    """Run one cycle, then sign a checkpoint if one is due.

    Args:
        settings: validated settings.
        repo: the monitor's repository.
        cipher: the alert key.
        signer: the checkpoint signing key.
        clock: returns the current aware UTC time.
        actor: ``cli`` or ``daemon``.
        seal_failed: receives a failing checkpoint's error, after which the committed cycle
            is still returned (the daemon: the next due checkpoint covers these events);
            None lets the error propagate (``once``).
        sealer: signs a checkpoint inside the cycle's transaction when its policy says so.
        source: the open decision source (None: the configured one, or the simulator).
        scheduled_for: the fire time this cycle belongs to (the daemon).
        unrecorded: failures the database refused earlier, recorded when it accepts writes.

    Returns:
        The committed cycle.

    Raises:
        Exception: whatever the cycle raises (it is recorded as a failed run first).
    """
    outcome = execute_cycle(
        settings,
        repo,
        cipher,
        clock=clock,
        actor=actor,
        scheduled_for=scheduled_for,
        unrecorded=unrecorded,
        source=source,
        sealer=sealer,
    )
    head = outcome.audit[-1].seq if outcome.audit else None
    try:
        seal_if_due(settings, repo, signer, ts=rfc3339(clock()), head_seq=head)
    except Exception as exc:
        if seal_failed is None:
            raise
        seal_failed(exc)
    return outcome


def run_once(
    settings: Settings,
    repo: Repository,
    cipher: AlertCipher,
    signer: Ed25519PrivateKey,
    *,
    clock: Clock,
    actor: str,
    new_chain: bool = False,
    sealer: Sealer | None = None,
) -> tuple[CycleOutcome, Path | None]:
    """The whole sequence for one manual cycle: begin → config change → cycle → seal.

    Args:
        settings: validated settings.
        repo: the monitor's repository.
        cipher: the alert key.
        signer: the checkpoint signing key.
        clock: returns the current aware UTC time.
        actor: who runs it (``cli``).
        new_chain: see :func:`begin`.
        sealer: see :func:`cycle`.

    Returns:
        ``(the committed cycle, where an old anchor file was set aside or None)``.

    Raises:
        ChainLostError: as :func:`begin`.
        Exception: whatever the cycle raises (recorded as a failed run first).
    """
    aside = begin(settings, repo, new_chain=new_chain, actor=actor, ts=rfc3339(clock()))
    record_config_change(settings, repo, actor=actor, ts=rfc3339(clock()))
    outcome = cycle(settings, repo, cipher, signer, clock=clock, actor=actor, sealer=sealer)
    return outcome, aside
