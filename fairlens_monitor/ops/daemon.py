"""The long-running service: an APScheduler 3 ``BlockingScheduler`` that runs every monitor
of the portfolio, each on its own schedule, until told to stop.

Guarantees: one job per monitor (``ops.runner``: every ``schedule.interval_seconds`` or at
the fires of ``schedule.cron``), each with ``max_instances=1``, coalescing and its own
misfire grace, on a pool of ``daemon.workers`` threads, so a slow SQL source holds one
worker, not the daemon; a monitor whose cycle raises (its source missing, its server down)
has a failed run recorded (if the database refuses even that record, it is kept and recorded
once the database accepts writes again) and the others go on; a monitor paused in the
database (``monitors.paused``) is skipped; a fire skipped because the monitor's cycle still
runs, or missed past the grace time, is a ``cycle_missed`` event naming the monitor.

One daemon per SQLite file (``flock`` on the file's real path and inode) runs every monitor.
On PostgreSQL several daemons share a database and split its monitors (``ops.leadership``):
a lease per monitor, balanced so none leads more than its share, moved from a dead or frozen
daemon within ``leadership.lease_seconds`` (``daemon_leading`` naming the monitor and why,
``cycle_missed`` for each fire nobody ran meanwhile); a daemon that lost a monitor cannot
commit for it (fencing) and stands down from it. The service's own jobs — retention,
backups, the trail's self-check every 10 minutes (``ops.chainwatch``) — run once per
database, on the holder of the service lease. Every ``audit.checkpoint_every`` events and at
shutdown the chain head is signed and anchored; SIGINT/SIGTERM let the running cycles
finish, write a ``daemon_stopped`` audit event and a final checkpoint, and return 0.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fairlens_monitor import __version__
from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.audit.events import (
    DAEMON_STARTED,
    DAEMON_STOPPED,
)
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.ops import sequence
from fairlens_monitor.ops.app import open_cipher, open_repository, open_signing_key
from fairlens_monitor.ops.chainwatch import ChainCheck
from fairlens_monitor.ops.cycle import Clock, error_text, utc_now
from fairlens_monitor.ops.governance import sync_portfolio
from fairlens_monitor.ops.health import Watch
from fairlens_monitor.ops.leadership import DaemonStats, Leadership, lease_seconds
from fairlens_monitor.ops.runner import MonitorRunner, job_id
from fairlens_monitor.ops.sealing import Sealer
from fairlens_monitor.ops.service_jobs import ServiceJobs
from fairlens_monitor.security.crypto import AlertCipher
from fairlens_monitor.store.db import instance_lock
from fairlens_monitor.store.lease import FencedError, Lease, monitor_scope
from fairlens_monitor.store.monitor_lease import MonitorLeases
from fairlens_monitor.store.repository import Repository

log = logging.getLogger(__name__)


class Daemon(Leadership, ServiceJobs):
    """One scheduler session over the portfolio: a job per monitor, the service's jobs."""

    def __init__(
        self,
        portfolio: Settings | Mapping[str, Settings],
        repo: Repository,
        cipher: AlertCipher,
        signer: Ed25519PrivateKey,
        *,
        clock: Clock,
        emit: Callable[[str], None],
        max_cycles: int | None,
    ) -> None:
        """Prepare (but do not start) the scheduler; see :func:`run_daemon`.

        Args:
            portfolio: monitor name -> its settings (the service sections are the same in
                each; the first monitor's are used for them); one ``Settings`` is the
                portfolio ``{"default": settings}``.
            repo: the service's repository (the first monitor's scope).
            cipher: the alert key.
            signer: the checkpoint signing key.
            clock: returns the current aware UTC time.
            emit: receives each console line.
            max_cycles: stop after this many cycles in all (ok or failed); None: never.
        """
        self.portfolio = as_portfolio(portfolio)
        self.settings = settings = next(iter(self.portfolio.values()))  # service sections
        self.repo, self.cipher, self.signer = repo, cipher, signer
        self.clock, self.emit, self.max_cycles = clock, emit, max_cycles
        holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        seconds = lease_seconds(self.portfolio)
        self.lease = Lease(repo.engine, lease_seconds=seconds, holder=holder)
        self.lease.install(repo.sessions)
        self.leases = MonitorLeases(
            repo.engine, lease_seconds=seconds, holder=holder, monitors=list(self.portfolio)
        )
        self.sealer = Sealer.of(settings, signer).attach(repo)  # events outside cycles too
        self.runners: dict[str, MonitorRunner] = {}
        for name, own in self.portfolio.items():
            scoped = _scoped(repo, name)  # shares repo's sessions: fenced and sealed too
            self.leases.install(scoped.sessions)
            self.runners[name] = MonitorRunner(name, own, scoped, self, self.sealer.attach(scoped))
        self._lead_lock = threading.RLock()
        self._heartbeat_stop = threading.Event()
        self._count_lock = threading.Lock()
        self.stats = DaemonStats()
        # re-entrant: a second SIGTERM's handler runs inside the first one's request_stop,
        # on the same (main) thread, and must find the stop already requested, not wait
        self._stop_lock = threading.RLock()
        self._stopper: threading.Thread | None = None
        self.scheduler = BlockingScheduler(
            timezone=UTC,
            executors={
                "default": ThreadPoolExecutor(max_workers=settings.daemon.workers),
                "service": ThreadPoolExecutor(max_workers=1),
                # the trail checked incrementally, on a worker of its own (ops.chainwatch)
                "verifier": ThreadPoolExecutor(max_workers=1),
            },
            job_defaults={"max_instances": 1, "coalesce": True},
        )
        self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self.chain_check = ChainCheck(settings, emit)

    def run(self) -> DaemonStats:
        """Start the scheduler and block until a stop is requested; return the counters.

        Raises:
            ConfigError: the metrics endpoint cannot bind its port (before anything runs).
        """
        watch = Watch.start(self)  # /metrics, /healthz and sd_notify (ops.health)
        try:
            return self._run()
        finally:
            self._stop_courier()
            watch.stop()

    def _run(self) -> DaemonStats:
        start = datetime.now(UTC)
        count = len(self.runners)
        for k, (name, runner) in enumerate(self.runners.items()):
            plan = runner.settings.schedule
            # interval monitors are staggered over their interval, so 200 monitors at 60 s
            # do not all start at once; one monitor starts at once, as before
            offset = (plan.interval_seconds or 0.0) * k / count
            trigger, first = runner.schedule(start, offset)
            # a cron monitor's first fire is its trigger's: APScheduler reads an explicit
            # next_run_time=None as "paused", so it is passed only when there is one
            self.scheduler.add_job(
                runner.run,
                trigger,
                id=job_id(name),
                name=f"monitor {name}",
                misfire_grace_time=max(1, round(plan.misfire_grace_seconds)),
                **({} if first is None else {"next_run_time": first}),
            )
        self._add_service_jobs()
        self._service_tick()
        taken = self._balance(defer=True)
        self._record_portfolio_at_start([runner for runner, _ in taken])
        with self.lease.unfenced():
            self._event(DAEMON_STARTED, self._started_payload())
        self._record_taken(taken, rules=False)
        if not self.leases.held():
            self.emit("standby: another daemon runs the cycles of every monitor on this database")
        heartbeat = threading.Thread(
            target=self._heartbeat,
            args=(self.lease.lease_seconds / 3,),
            name="fairlens-lease",
            daemon=True,
        )
        if self.lease.server:
            heartbeat.start()
        self._announce()
        self._start_courier()
        self.scheduler.start()
        if self._stopper is not None:
            self._stopper.join()
        self._stop_courier()  # its last attempts are on the chain before the final checkpoint
        self._heartbeat_stop.set()
        if heartbeat.is_alive():
            heartbeat.join()
        for runner in self.runners.values():
            if self.leases.leads(runner.name):
                with monitor_scope(runner.name):  # fenced by the monitor's own lease
                    runner.record_pending()
                    runner.record_missed()
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
        if self.lease.leading or self.leases.held():
            with self.lease.unfenced():
                self._checkpoint()
        self.leases.leave()
        self.lease.release()
        for runner in self.runners.values():
            runner.close()
        return self.stats

    def _record_portfolio_at_start(self, taken: list[MonitorRunner]) -> None:
        """Put the portfolio's changes on the chain before ``daemon_started``.

        The daemon that runs the service (every one on SQLite; on PostgreSQL the holder of
        the service lease) records the monitors added, retired or with changed rules
        (``ops.governance.sync_portfolio``). Another daemon records only the rules of the
        monitors it took, as every later takeover does (``ops.leadership``): a daemon that
        stands by with other settings records nothing.
        """
        if not self.lease.server or self.lease.leading:
            try:
                sync_portfolio(self.portfolio, self.repo, actor="daemon", ts=rfc3339(self.clock()))
            except Exception as exc:
                log.error("could not record the portfolio's changes: %s", error_text(exc))
            return
        for runner in taken:
            with monitor_scope(runner.name):
                try:
                    self._record_config_change(runner)
                except FencedError as exc:
                    runner.stand_down(str(exc))

    def _started_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"pid": os.getpid(), "code_version": __version__}
        only = next(iter(self.runners.values())) if len(self.runners) == 1 else None
        if only is not None and only.settings.schedule.interval_seconds is not None:
            payload["interval_seconds"] = only.settings.schedule.interval_seconds
        if only is not None and self.leases.held():
            # one monitor, led here: the snapshot its later config changes are compared with
            payload["config_hash"] = only.settings.config_hash()
            payload["settings"] = only.settings.shaping()
        elif only is None:
            payload["monitors"] = sorted(self.runners)
            payload["leading"] = self.leases.held()
        if not self.leases.held():
            payload["role"] = "standby"
        return payload

    def _announce(self) -> None:
        workers = self.settings.daemon.workers
        if len(self.runners) == 1:
            runner = next(iter(self.runners.values()))
            self.emit(
                f"FairLens Monitor {__version__} running {runner.settings.schedule.describe()}"
                " (Ctrl-C to stop)"
            )
        else:
            self.emit(
                f"FairLens Monitor {__version__} running {len(self.runners)} monitors on "
                f"{workers} workers (Ctrl-C to stop)"
            )
        for runner in self.runners.values():
            src = runner.settings.source
            where = (
                "simulator"
                if src.kind == "simulator"
                else f"{src.kind} {src.path or src.table or 'query'} (window {src.window})"
            )
            if len(self.runners) > 1 or src.kind != "simulator":
                self.emit(
                    f"monitor {runner.name}: {runner.settings.schedule.describe()}, source {where}"
                )

    def cycle_done(self, ok: bool) -> None:
        """Count a finished cycle of any monitor; stop after ``max_cycles`` in all."""
        with self._count_lock:
            if ok:
                self.stats.cycles_ok += 1
            else:
                self.stats.cycles_failed += 1
            done = self.stats.cycles_ok + self.stats.cycles_failed
        if self.max_cycles is not None and done >= self.max_cycles:
            self.request_stop(f"completed {done} cycles")

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


def run_daemon(
    portfolio: Settings | Mapping[str, Settings],
    *,
    clock: Clock = utc_now,
    emit: Callable[[str], None] = print,
    max_cycles: int | None = None,
    handle_signals: bool = True,
    new_chain: bool = False,
) -> DaemonStats:
    """Run the monitoring daemon over every monitor until SIGINT/SIGTERM (or ``max_cycles``).

    Args:
        portfolio: monitor name -> its settings (``config.monitors.load_portfolio``); one
            ``Settings`` is the portfolio ``{"default": settings}``.
        clock: returns the current aware UTC time (stored times come from it).
        emit: receives each console line.
        max_cycles: stop after this many cycles in all (ok or failed); None runs forever.
        handle_signals: install SIGINT/SIGTERM handlers (main thread only).
        new_chain: the database was lost: set the old chain's anchor file aside and record
            a new chain (see :func:`fairlens_monitor.ops.audit_trail.start_new_chain`).

    Returns:
        The session's counters.

    Raises:
        ValueError: the portfolio is empty.
        AlreadyRunningError: another daemon holds this SQLite database's lock.
        StoreError: the database cannot be opened or is at another schema revision.
        KeyFileError: the alert key is missing (with alerts stored), corrupt or exposed.
        ChainLostError: the database holds no chain but the anchor file holds checkpoints
            of one, and ``new_chain`` is False.
    """
    monitors = as_portfolio(portfolio)
    settings = next(iter(monitors.values()))  # the service sections are every monitor's
    with instance_lock(settings.database.url):
        repo = _scoped(open_repository(settings), next(iter(monitors)))
        try:
            aside = sequence.begin(
                settings, repo, new_chain=new_chain, actor="daemon", ts=rfc3339(clock())
            )
            if aside is not None:
                emit(f"new chain started; the old chain's anchor file is kept as {aside}")
            daemon = Daemon(
                monitors,
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


def as_portfolio(portfolio: Settings | Mapping[str, Settings]) -> dict[str, Settings]:
    """``{name: settings}`` of a portfolio, or of one ``Settings`` (monitor ``default``).

    Raises:
        ValueError: the portfolio is empty.
    """
    monitors = {"default": portfolio} if isinstance(portfolio, Settings) else dict(portfolio)
    if not monitors:
        raise ValueError("portfolio: no monitor to run")
    return monitors


def _scoped(repo: Repository, monitor: str) -> Repository:
    """``repo`` scoped to ``monitor`` (itself when it already is)."""
    return repo if repo.monitor == monitor else repo.for_monitor(monitor)


def _install_signals(daemon: Daemon) -> dict[int, Any]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        daemon.request_stop(signal.Signals(signum).name)

    return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
