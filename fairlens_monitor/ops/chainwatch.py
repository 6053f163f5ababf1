"""The daemon's own check of its audit trail: incremental every 10 minutes, whole daily.

simulate → measure → detect → alert → **log**, checked by the process that writes it. A
scheduler job on an executor of its own (never the cycles' worker, so a walk never delays or
skips a cycle) runs :func:`~fairlens_monitor.ops.incremental.verify_incremental` from the
seq its previous walk verified, or a full walk first and at least once every 24 hours (and
after any walk that found anomalies). It reads through a read-only repository of its own:
on SQLite a reader never takes the write lock a cycle needs.

Each walk runs in a short-lived child process (``spawn``, never ``fork`` in a threaded
daemon): a full walk holds memory in proportion to the chain (the records and the row ledger
it checks), and Python keeps a freed heap, so walked in the daemon it would step the daemon's
resident memory up at every full walk (measured: 198 → 291 MiB at a 30,000-event chain,
docs/PERFORMANCE.md). A child returns its memory when it exits; the daemon keeps only the
small report.

A walk that finds anomalies, or cannot run, is one ``ERROR`` log line and one console line
naming the walk, the first anomaly's seq, kind and (for a row) table and id — never a stored
value. Nothing is written to the audit chain: a tampered trail is reported, not amended —
but when ``notify.on.chain_failed`` names channels, a ``chain_failed`` notification is
written to the outbox (once per first anomaly, ``ops.notify.worker.enqueue_chain_failure``).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime

from fairlens_monitor.audit.verify import Anomaly
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.ops.app import open_repository
from fairlens_monitor.ops.cycle import error_text
from fairlens_monitor.ops.incremental import WalkState, verify_incremental
from fairlens_monitor.ops.notify.message import location
from fairlens_monitor.ops.notify.worker import enqueue_chain_failure, place_of
from fairlens_monitor.ops.verification import TrailReport, verify_store
from fairlens_monitor.security.masking import configure_logging

log = logging.getLogger(__name__)
VERIFY_MINUTES = 10


class ChainCheck:
    """One daemon's verifier: remembers its walks (in memory) and reports what it finds."""

    def __init__(
        self,
        settings: Settings,
        emit: Callable[[str], None],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Prepare (the first walk will be full).

        Args:
            settings: the daemon's settings.
            emit: receives a console line when a walk finds anomalies or cannot run.
            now: the wall clock (when a full walk ran is real time, not the cycles' clock).
        """
        self.settings, self.emit, self.now = settings, emit, now
        self.state = WalkState()
        self.walked_at: datetime | None = None  # when the last walk ended (ops.metrics)
        self._said_no_child = False  # the warning that walks run in-process, said once

    def run(self) -> TrailReport | None:
        """Walk once; never raises (a scheduler job's failure must not reach the cycles).

        Returns:
            The report, or None when the trail could not be verified.
        """
        started = self.now()
        full = self.state.full_due(started)
        try:
            outcome = self._walk_in_child(full)
        except BrokenProcessPool as exc:  # the child died (killed, out of memory)
            outcome = error_text(exc)
        except OSError as exc:  # no child here (no /dev/shm for its queue, no process slot)
            if not self._said_no_child:
                self._said_no_child = True
                log.warning(
                    "audit chain walked in the daemon itself (its memory is kept): a child "
                    "process cannot start here: %s",
                    error_text(exc),
                )
            outcome = walk(self.settings, full, self.state.verified_to)
        except Exception as exc:  # never raised into the scheduler
            outcome = error_text(exc)
        if isinstance(outcome, str):  # a job must never stop: say so, try again next time
            log.error("audit chain not verified: %s", outcome)
            self.emit(f"✗ audit chain not verified: {outcome}")
            return None
        trail = outcome
        report = trail.chain
        self.state.record(trail.walk, report.intact, report.last_verified_seq, started)
        self.walked_at = self.now()
        if report.intact:
            log.info(
                "audit chain intact to seq %d (%s walk from seq %d)",
                report.head_seq,
                trail.walk,
                trail.from_seq,
            )
            return trail
        first = report.anomalies[0]
        line = (
            f"audit chain TAMPERED at {location(place_of(first))}: "
            f"{len(report.anomalies)} anomalies ({trail.walk} walk from seq {trail.from_seq}); "
            "run `fairlens-monitor verify`"
        )
        log.error("%s", line)
        self.emit(f"✗ {line}")
        self._notify(first, started)
        return trail

    def _walk_in_child(self, full: bool) -> TrailReport | str:
        """One walk in a spawned child (:func:`prepare_child`, :func:`walk`).

        Raises:
            BrokenProcessPool: the child died.
            OSError: no child could be started.
        """
        with ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=prepare_child
        ) as pool:
            return pool.submit(walk, self.settings, full, self.state.verified_to).result()

    def _notify(self, first: Anomaly, at: datetime) -> None:
        """Write the ``chain_failed`` notifications (never raises)."""
        routes = self.settings.notify.routes()
        if not routes.get("chain_failed"):
            return
        try:
            repo = open_repository(self.settings)
            try:
                enqueue_chain_failure(repo, routes, first=first, at=at)
            finally:
                repo.engine.dispose()
        except Exception as exc:  # the trail's report above stands without it
            log.error("chain_failed notification not written: %s", error_text(exc))


def prepare_child() -> None:
    """Set up the walking child (its initializer): deaf to stops, logging masked.

    Ctrl-C in a terminal and ``timeout``/``kill -- -PGID`` signal the daemon's whole process
    group, the child included: the daemon's own stop waits for the walk in progress, so the
    child ignores SIGINT and SIGTERM, finishes the walk and exits (and never prints a
    ``KeyboardInterrupt`` traceback). What the child logs (a driver's warning) goes to
    stderr through the same masking and password filters as the daemon's own lines.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(logging.WARNING, process="chain walk")
    logging.captureWarnings(True)


def walk(settings: Settings, full: bool, verified_to: int | None) -> TrailReport | str:
    """Walk the trail once, in the calling process (the child :meth:`ChainCheck.run` starts).

    Args:
        settings: the daemon's settings (database, anchor file, public key, checkpoint spacing).
        full: walk the whole chain (else from the newest checkpoint at or below ``verified_to``).
        verified_to: the highest seq the previous walk verified.

    Returns:
        The report, or the masked one-line reason the trail could not be walked (a string,
        not an exception: an exception must cross the process boundary by pickling, and the
        project's errors carry arguments that do not rebuild).
    """
    anchor, key = settings.audit.anchor_file, settings.keys.public_key
    every = settings.audit.checkpoint_every
    try:
        repo = open_repository(settings, readonly=True)
        try:
            if full:
                return verify_store(
                    repo, anchor_file=anchor, public_key=key, checkpoint_every=every
                )
            return verify_incremental(
                repo,
                anchor_file=anchor,
                public_key=key,
                verified_to=verified_to,
                checkpoint_every=every,
            )
        finally:
            repo.engine.dispose()
    except Exception as exc:
        return error_text(exc)
