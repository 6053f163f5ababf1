"""The long-running service: an APScheduler 3 ``BlockingScheduler`` that runs one cycle per
interval until told to stop.

Guarantees: one daemon per SQLite file (``flock`` on the file's real path and inode); on
PostgreSQL several daemons may share a database and exactly one — the holder of the
leadership lease (``store.lease``) — runs each cycle, the others standing by and taking over
once the leader stops renewing it (dead, frozen or cut off), with ``daemon_leading`` naming
the reason and ``cycle_missed`` for each fire nobody ran meanwhile; a leader that lost the
lease cannot commit (fencing) and stands down; only the leader records ``config_changed``;
at most one cycle at a time (``max_instances=1``, one worker thread), and a fire skipped
because a cycle still runs, or missed past the grace time, is a ``cycle_missed`` event;
late fires coalesce into one; a cycle that raises
is recorded as a failed run (if the database refuses even that record, it is kept and
recorded once the database accepts writes again) and the next cycle runs as usual; every
``audit.checkpoint_every`` events and at shutdown the chain head is signed and anchored;
every 10 minutes the trail is verified on a worker of its own (incremental, whole daily:
``ops.chainwatch``), a tampered trail being an error line;
SIGINT/SIGTERM let the running cycle finish, write a ``daemon_stopped`` audit event and a
final checkpoint, and return 0.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fairlens_monitor import __version__
from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.audit.events import (
    BACKUP_FAILED,
    BACKUP_MADE,
    DAEMON_STARTED,
    DAEMON_STOPPED,
)
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.ops import sequence
from fairlens_monitor.ops.app import open_cipher, open_repository, open_signing_key
from fairlens_monitor.ops.audit_trail import (
    write_checkpoint,
)
from fairlens_monitor.ops.backup import (
    backup_payload,
    backup_sqlite,
    prune_backups,
    scheduled_name,
)
from fairlens_monitor.ops.chainwatch import VERIFY_MINUTES, ChainCheck
from fairlens_monitor.ops.console import cycle_lines
from fairlens_monitor.ops.cycle import (
    Clock,
    FailedCycle,
    error_text,
    record_failure,
    utc_now,
)
from fairlens_monitor.ops.leadership import JOB_ID, DaemonStats, Leadership
from fairlens_monitor.ops.retention import apply_retention
from fairlens_monitor.ops.sealing import Sealer
from fairlens_monitor.security.crypto import AlertCipher
from fairlens_monitor.sources import open_source
from fairlens_monitor.store.db import instance_lock, sqlite_path
from fairlens_monitor.store.lease import (
    Change,
    FencedError,
    Lease,
)
from fairlens_monitor.store.repository import Repository

log = logging.getLogger(__name__)


class Daemon(Leadership):
    """One scheduler session over an open repository and cipher."""

    def __init__(
        self,
        settings: Settings,
        repo: Repository,
        cipher: AlertCipher,
        signer: Ed25519PrivateKey,
        *,
        clock: Clock,
        emit: Callable[[str], None],
        max_cycles: int | None,
    ) -> None:
        """Prepare (but do not start) the scheduler; see :func:`run_daemon`."""
        self.settings, self.repo, self.cipher, self.signer = settings, repo, cipher, signer
        self.unrecorded: list[FailedCycle] = []
        self.clock, self.emit, self.max_cycles = clock, emit, max_cycles
        self.lease = Lease(
            repo.engine,
            lease_seconds=settings.leadership.lease_seconds,
            holder=f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}",
        )
        self.lease.install(repo.sessions)
        self.sealer = Sealer.of(settings, signer).attach(repo)  # events outside cycles too
        self._lead_lock = threading.RLock()
        self._missed: list[tuple[datetime, str]] = []
        self._heartbeat_stop = threading.Event()
        self.source = open_source(
            settings.source,
            settings.group_spec(),
            settings.measurement.label,
            settings.measurement.score,
            settings.measurement.score_bins,
        )
        self._start_change: Change | None = None
        self.stats = DaemonStats()
        self._first_fire = datetime.now(UTC)
        self._stop_lock = threading.Lock()
        self._stopper: threading.Thread | None = None
        self.scheduler = BlockingScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={
                "max_instances": 1,
                "coalesce": True,
                "misfire_grace_time": max(1, round(settings.schedule.misfire_grace_seconds)),
            },
        )
        self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        # the trail checked incrementally, on a worker of its own (ops.chainwatch)
        self.chain_check = ChainCheck(settings, emit)
        self.scheduler.add_executor(ThreadPoolExecutor(max_workers=1), "verifier")

    def run(self) -> DaemonStats:
        """Start the scheduler and block until a stop is requested; return the counters."""
        interval = self.settings.schedule.interval_seconds
        self._first_fire = datetime.now(UTC)
        trigger = IntervalTrigger(seconds=interval, start_date=self._first_fire, timezone=UTC)
        self.scheduler.add_job(self._cycle, trigger, id=JOB_ID, next_run_time=self._first_fire)
        self.scheduler.add_job(
            self.chain_check.run,
            IntervalTrigger(minutes=VERIFY_MINUTES, timezone=UTC),
            id="verify",
            executor="verifier",
        )
        if self.settings.retention.daily:
            self.scheduler.add_job(
                self._retention, IntervalTrigger(days=1, timezone=UTC), id="retention"
            )
        if self.settings.backup is not None and sqlite_path(self.settings.database.url):
            every = IntervalTrigger(hours=self.settings.backup.interval_hours, timezone=UTC)
            self.scheduler.add_job(self._backup, every, id="backup")
        elif self.settings.backup is not None:
            self.emit(
                "scheduled backups copy SQLite files; back PostgreSQL up with pg_dump "
                "(the backup section is ignored here)"
            )
        leading = self._lead(None, announce=False)
        if leading:  # only the leader's rules are the rules in force
            self._record_config_change()
        with self.lease.unfenced():
            self._event(
                DAEMON_STARTED,
                {
                    "pid": os.getpid(),
                    "interval_seconds": interval,
                    "code_version": __version__,
                    **(
                        {
                            "config_hash": self.settings.config_hash(),
                            "settings": self.settings.shaping(),
                        }
                        if leading
                        else {"role": "standby"}
                    ),
                },
            )
        if leading and self.lease.server:
            self._announce_lead(self._start_change)
        elif not leading:
            self.emit("standby: another daemon runs the cycles on this database")
        heartbeat = threading.Thread(target=self._heartbeat, name="fairlens-lease", daemon=True)
        if self.lease.server:
            heartbeat.start()
        self.emit(f"FairLens Monitor {__version__} running every {interval:g}s (Ctrl-C to stop)")
        if self.source is not None:
            src = self.settings.source
            self.emit(
                f"source: {src.kind} {src.path or src.table or 'query'} (window {src.window})"
            )
        self.scheduler.start()
        if self._stopper is not None:
            self._stopper.join()
        self._heartbeat_stop.set()
        if heartbeat.is_alive():
            heartbeat.join()
        if self.lease.leading:
            self._record_pending_failures()
            self._record_missed()
        with self.lease.unfenced():
            self._event(
                DAEMON_STOPPED,
                {
                    "reason": self.stats.stop_reason,
                    "cycles_ok": self.stats.cycles_ok,
                    "cycles_failed": self.stats.cycles_failed,
                    "missed": self.stats.missed,
                },
            )
        if self.lease.leading:
            self._checkpoint()
        self.lease.release()
        if self.source is not None:
            self.source.close()
        return self.stats

    def request_stop(self, reason: str) -> None:
        """Stop after the running cycle (if any) finishes; safe from signals and jobs."""
        with self._stop_lock:
            if self._stopper is not None:
                return
            self.stats.stop_reason = reason
            self._stopper = threading.Thread(target=self._shutdown, name="fairlens-stop")
            self._stopper.start()

    def _shutdown(self) -> None:
        try:
            self.scheduler.shutdown(wait=True)
        except Exception as exc:  # e.g. a stop before the scheduler had started
            log.warning("scheduler shutdown: %s", exc)

    def _cycle(self) -> None:
        scheduled = self._fire_time(datetime.now(UTC))
        if not self._lead(scheduled):
            return
        self._record_pending_failures()
        try:
            outcome = sequence.cycle(
                self.settings,
                self.repo,
                self.cipher,
                self.signer,
                clock=self.clock,
                actor="daemon",
                seal_failed=_checkpoint_failed,  # the next due checkpoint covers these events
                scheduled_for=scheduled,
                unrecorded=self.unrecorded,
                source=self.source,
                sealer=self.sealer,
            )
        except FencedError as exc:  # a takeover happened while this cycle ran
            self._stand_down(str(exc))
            return
        except Exception as exc:
            self.stats.cycles_failed += 1
            error = error_text(exc)
            log.error("cycle failed: %s", error)
            self.emit(f"✗ cycle failed: {error} (the next cycle will run as scheduled)")
        else:
            self.stats.cycles_ok += 1
            self._record_missed()  # the database takes writes again: the skipped fires too
            for line in cycle_lines(outcome, echo_plaintext=self.settings.alerts.echo_plaintext):
                self.emit(line)
        done = self.stats.cycles_ok + self.stats.cycles_failed
        if self.max_cycles is not None and done >= self.max_cycles:
            self.request_stop(f"completed {done} cycles")

    def _record_pending_failures(self) -> None:
        """Record failures the database refused earlier (e.g. while it was locked)."""
        while (
            self.unrecorded
            and record_failure(self.settings, self.repo, self.unrecorded[0]) is not None
        ):
            self.unrecorded.pop(0)

    def _backup(self) -> None:
        """Scheduled backup (leader only): verified copy, audit event, keep the newest N."""
        plan = self.settings.backup
        if plan is None or not self.lease.leading:
            return
        try:
            made = backup_sqlite(
                self.settings.database.url,
                scheduled_name(plan.dir, self.clock()),
                anchor_file=self.settings.audit.anchor_file,
                public_key=self.settings.keys.public_key,
                busy_timeout_ms=self.settings.database.busy_timeout_ms,
            )
        except Exception as exc:
            self.emit(f"✗ scheduled backup failed: {error_text(exc)}")
            self._event(BACKUP_FAILED, {"error": error_text(exc)})
            return
        pruned = prune_backups(plan.dir, plan.keep)
        self._event(BACKUP_MADE, backup_payload(made, pruned))
        self.emit(f"backup {made.path.name}: chain head seq {made.head_seq}, verified")

    def _retention(self) -> None:
        """Daily retention (leader only); a failure is logged and tried again tomorrow."""
        if not self.lease.leading:
            return
        try:
            done = apply_retention(
                self.settings.retention, self.repo, self.signer, now=self.clock()
            )
        except Exception as exc:
            self.emit(f"✗ retention failed: {error_text(exc)}")
            return
        self.emit(
            f"retention: deleted {done['readings']} readings, {done['runs']} runs, "
            f"{done['audit_events']} audit events"
        )

    def _checkpoint(self) -> None:
        try:
            write_checkpoint(
                self.repo,
                self.signer,
                anchor_file=self.settings.audit.anchor_file,
                ts=rfc3339(self.clock()),
            )
        except Exception as exc:  # the next due checkpoint covers these events too
            _checkpoint_failed(exc)


def run_daemon(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    emit: Callable[[str], None] = print,
    max_cycles: int | None = None,
    handle_signals: bool = True,
    new_chain: bool = False,
) -> DaemonStats:
    """Run the monitoring daemon until SIGINT/SIGTERM (or ``max_cycles`` cycles).

    Args:
        settings: validated settings.
        clock: returns the current aware UTC time (stored times come from it).
        emit: receives each console line.
        max_cycles: stop after this many cycles (ok or failed); None runs forever.
        handle_signals: install SIGINT/SIGTERM handlers (main thread only).
        new_chain: the database was lost: set the old chain's anchor file aside and record
            a new chain (see :func:`fairlens_monitor.ops.audit_trail.start_new_chain`).

    Returns:
        The session's counters.

    Raises:
        AlreadyRunningError: another daemon holds this SQLite database's lock.
        StoreError: the database cannot be opened or is at another schema revision.
        KeyFileError: the alert key is missing (with alerts stored), corrupt or exposed.
        ChainLostError: the database holds no chain but the anchor file holds checkpoints
            of one, and ``new_chain`` is False.
    """
    with instance_lock(settings.database.url):
        repo = open_repository(settings)
        try:
            aside = sequence.begin(
                settings, repo, new_chain=new_chain, actor="daemon", ts=rfc3339(clock())
            )
            if aside is not None:
                emit(f"new chain started; the old chain's anchor file is kept as {aside}")
            daemon = Daemon(
                settings,
                repo,
                open_cipher(settings, repo, actor="daemon"),
                open_signing_key(settings, repo),
                clock=clock,
                emit=emit,
                max_cycles=max_cycles,
            )
            previous = _install_signals(daemon) if handle_signals else {}
            try:
                stats = daemon.run()
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        finally:
            repo.engine.dispose()
    emit(
        f"stopped ({stats.stop_reason}): {stats.cycles_ok} ok, {stats.cycles_failed} failed, "
        f"{stats.missed} missed"
    )
    return stats


def _install_signals(daemon: Daemon) -> dict[int, Any]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        daemon.request_stop(signal.Signals(signum).name)

    return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}


def _checkpoint_failed(exc: Exception) -> None:
    log.error("checkpoint failed: %s: %s", type(exc).__name__, exc)
