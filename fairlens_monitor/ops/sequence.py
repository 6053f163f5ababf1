"""The one sequence every monitoring run follows: chain start → config change → cycle → seal.

simulate/read → measure → detect → alert → **log**, as an operation. ``once`` (the CLI) and
the daemon call these same steps, so a manual cycle and a scheduled one leave the same
trail: :func:`begin` refuses (or, asked, records) a new chain beside an old chain's anchor
file; :func:`begin_portfolio` does that and then puts the portfolio's changes on the chain
(monitors added, retired, or with changed rules:
:func:`~fairlens_monitor.ops.governance.sync_portfolio`) before the cycles that use them;
:func:`cycle` runs one monitor's cycle and signs a checkpoint when one is due.
:func:`run_portfolio` is the whole sequence for one manual cycle of each chosen monitor;
the daemon runs :func:`begin_portfolio`
at start and :func:`cycle` on every fire of each monitor, and adds what only a long-running
process has (scheduling, leadership, missed fires).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.errors import PausedMonitorError
from fairlens_monitor.ops.audit_trail import (
    check_chain_start,
    checkpoint_due,
    start_new_chain,
    write_checkpoint,
)
from fairlens_monitor.ops.cycle import Clock, CycleOutcome, FailedCycle, execute_cycle
from fairlens_monitor.ops.governance import sync_portfolio
from fairlens_monitor.ops.sealing import Sealer
from fairlens_monitor.security.crypto import AlertCipher
from fairlens_monitor.sources.base import DecisionSource
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


def begin_portfolio(
    portfolio: Mapping[str, Settings],
    repo: Repository,
    *,
    actor: str,
    ts: str,
    new_chain: bool = False,
) -> Path | None:
    """Start of ``once`` and of the daemon: :func:`begin`, then the portfolio's changes.

    Compares the config's monitors with the ``monitors`` table and the chain and records
    each difference as an audit event naming its monitor (``monitor_added``,
    ``config_changed`` with each changed key, ``monitor_retired``; see
    :func:`~fairlens_monitor.ops.governance.sync_portfolio`), each with its row in one
    transaction. Run it once per start, before any monitor's first cycle.

    Args:
        portfolio: ``{name: settings}`` (``config.monitors.load_portfolio``); the service
            sections (anchor file, database) are the same in each.
        repo: a writable repository on the service's database (any monitor's scope).
        actor: who starts (``cli`` or ``daemon``).
        ts: the RFC 3339 time of the events.
        new_chain: see :func:`begin`.

    Returns:
        Where the old chain's anchor file was set aside, or None when nothing was moved.

    Raises:
        ChainLostError: as :func:`begin`.
    """
    service = next(iter(portfolio.values()))
    aside = begin(service, repo, new_chain=new_chain, actor=actor, ts=ts)
    sync_portfolio(portfolio, repo, actor=actor, ts=ts)
    return aside


@dataclass
class PortfolioRun:
    """What one manual run of several monitors did.

    Attributes:
        outcomes: each monitor that ran, in the order run, with its committed cycle.
        failures: each monitor whose cycle raised, with the exception (its failed run is
            recorded; the other monitors still ran).
        skipped: the monitors not run because they are paused (the default choice only).
        aside: where an old chain's anchor file was set aside, or None.
    """

    outcomes: dict[str, CycleOutcome] = field(default_factory=dict)
    failures: dict[str, Exception] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    aside: Path | None = None


def run_portfolio(
    portfolio: Mapping[str, Settings],
    repo: Repository,
    cipher: AlertCipher,
    signer: Ed25519PrivateKey,
    *,
    names: Sequence[str],
    clock: Clock,
    actor: str,
    new_chain: bool = False,
    sealer: Callable[[Repository], Sealer | None] | None = None,
) -> PortfolioRun:
    """One manual cycle of each chosen monitor: begin → portfolio changes → cycles → seal.

    Args:
        portfolio: ``{name: settings}``.
        repo: a writable repository on the service's database.
        cipher: the alert key.
        signer: the checkpoint signing key.
        names: the monitors to run (each in ``portfolio``); empty: every monitor that is not
            paused in the database.
        clock: returns the current aware UTC time.
        actor: who runs it (``cli``).
        new_chain: see :func:`begin`.
        sealer: given a monitor's repository, the sealer of its cycle's transaction (and
            attaches it), or None for none.

    Returns:
        What ran, failed and was skipped (:class:`PortfolioRun`). A monitor's failing cycle
        does not stop the others.

    Raises:
        ChainLostError: as :func:`begin`.
        PausedMonitorError: a monitor named in ``names`` is paused; nothing was written.
    """
    paused = {row.name for row in repo.monitor_rows() if row.paused and row.retired_at is None}
    if stopped := [n for n in names if n in paused]:
        raise PausedMonitorError(stopped[0])
    run = PortfolioRun()
    run.aside = begin_portfolio(
        portfolio, repo, actor=actor, ts=rfc3339(clock()), new_chain=new_chain
    )
    if not names:  # paused again after the check above is caught below, row by row
        paused = {row.name for row in repo.monitor_rows() if row.paused}
        run.skipped = [n for n in portfolio if n in paused]
    for name in names or [n for n in portfolio if n not in paused]:
        scoped = repo.for_monitor(name)
        try:
            run.outcomes[name] = cycle(
                portfolio[name],
                scoped,
                cipher,
                signer,
                clock=clock,
                actor=actor,
                sealer=None if sealer is None else sealer(scoped),
            )
        except Exception as exc:  # recorded as the monitor's failed run by execute_cycle
            run.failures[name] = exc
    return run
