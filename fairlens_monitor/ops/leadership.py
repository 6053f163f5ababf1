"""The daemon's duties as a member of a group of daemons: the leases and the balance.

simulate → measure → detect → alert → **log**, scheduled. :class:`Leadership` is the part of
:class:`~fairlens_monitor.ops.daemon.Daemon` that

- holds the **service lease** (``store.lease``, one row): its holder runs the service's own
  jobs — retention, backups, the chain self-check — once per database;
- holds **a lease per monitor** (``store.monitor_lease``): a heartbeat thread, every third
  of ``leadership.lease_seconds``, renews this daemon's leases, stands down from monitors
  another daemon took, and applies the balancing plan (``ops.balancing.plan``): it releases
  a surplus over its share (between cycles) and takes free monitors up to it — among them
  those of a daemon that died or froze, whose leases expired;
- records, for each monitor it takes, ``daemon_leading`` (naming the monitor and why), the
  ``config_changed`` of the rules it brings, and a ``cycle_missed`` for every fire nobody
  ran since the monitor's last cycle.

On SQLite one daemon runs every monitor and none of this talks to the database.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.audit.events import DAEMON_LEADING
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.ops.balancing import plan
from fairlens_monitor.ops.cycle import Clock, error_text
from fairlens_monitor.ops.governance import record_config_change
from fairlens_monitor.ops.runner import JOB_PREFIX, MonitorRunner
from fairlens_monitor.store.lease import FencedError, Lease, monitor_scope
from fairlens_monitor.store.monitor_lease import MonitorLeases, Taken
from fairlens_monitor.store.repository import Repository

# the daemon's logger: these lines were the daemon's before the split, and operators filter on it
log = logging.getLogger("fairlens_monitor.ops.daemon")


@dataclass
class DaemonStats:
    """Counters of one daemon session (all monitors together)."""

    cycles_ok: int = 0
    cycles_failed: int = 0
    missed: int = 0
    stop_reason: str = ""


class Leadership:
    """Lease handling of a daemon (the base of ``Daemon``)."""

    repo: Repository
    lease: Lease
    leases: MonitorLeases
    runners: Mapping[str, MonitorRunner]
    clock: Clock
    emit: Callable[[str], None]
    stats: DaemonStats
    _heartbeat_stop: threading.Event
    _lead_lock: threading.RLock

    def _service_tick(self) -> None:
        """Renew or take the service lease (a failure is logged; the next beat retries)."""
        try:
            self.lease.tick()
        except SQLAlchemyError as exc:
            log.warning("cannot reach the database to renew the service lease: %s", error_text(exc))

    def _balance(self, *, defer: bool = False) -> list[tuple[MonitorRunner, Taken]]:
        """Renew this daemon's monitor leases, stand down from lost ones, then rebalance.

        Args:
            defer: leave the records of the monitors taken to the caller (the start, which
                writes ``daemon_started`` first); their jobs wait until :meth:`_record_taken`.

        Returns:
            The monitors taken and not yet recorded (empty unless ``defer``).
        """
        with self._lead_lock:
            try:
                for name in self.leases.renew():
                    self.runners[name].stand_down("another daemon took its lease")
                survey = self.leases.survey()
            except SQLAlchemyError as exc:
                self.emit(f"✗ cannot reach the database to renew the leases: {error_text(exc)}")
                return []
            busy = [n for n, r in self.runners.items() if r.busy]
            todo = plan(self.leases.holder, list(self.runners), survey.live, survey.holders, busy)
            for name in todo.release:
                self.leases.release(name)
                self.emit(f"released monitor {name} to another daemon (share {todo.share})")
            pending: list[tuple[MonitorRunner, Taken]] = []
            for name in todo.take:
                runner = self.runners[name]
                runner.ready = False  # its job waits for the takeover's records
                try:
                    taken = self.leases.take(name)
                except SQLAlchemyError as exc:
                    log.warning("could not take monitor %s: %s", name, error_text(exc))
                    taken = None
                if taken is None:
                    runner.ready = True
                else:
                    pending.append((runner, taken))
            if defer:
                return pending
            self._record_taken(pending)
            return []

    def _record_taken(
        self, pending: list[tuple[MonitorRunner, Taken]], *, rules: bool = True
    ) -> None:
        """Record each monitor taken (its rules too unless ``rules`` is False: the start
        records them before ``daemon_started``), then let its job run."""
        for runner, taken in pending:
            try:
                self._taken(runner, taken, rules=rules)
            finally:
                runner.ready = True

    def _taken(self, runner: MonitorRunner, taken: Taken, *, rules: bool = True) -> None:
        """Record a monitor this daemon now leads: its rules, why, the fires nobody ran."""
        with monitor_scope(runner.name):
            try:
                if rules:
                    self._record_config_change(runner)
                runner.repo.append_event(
                    DAEMON_LEADING,
                    "daemon",
                    {
                        "monitor": runner.name,
                        "pid": os.getpid(),
                        "holder": self.leases.holder,
                        "epoch": taken.epoch,
                        "reason": taken.reason,
                        "previous_holder": taken.previous_holder,
                    },
                    ts=rfc3339(self.clock()),
                )
            except FencedError as exc:
                runner.stand_down(str(exc))
                return
            except Exception as exc:
                log.error("could not record daemon_leading: %s", error_text(exc))
            self.stats.missed += runner.missed_since_last_run()
        self.emit(
            f"leading: this daemon (pid {os.getpid()}) runs monitor {runner.name} "
            f"(epoch {taken.epoch}: {taken.reason})"
        )

    def _record_config_change(self, runner: MonitorRunner, *, initial: bool = False) -> None:
        try:
            record_config_change(
                runner.settings,
                runner.repo,
                actor="daemon",
                ts=rfc3339(self.clock()),
                initial=initial,
            )
        except FencedError:
            raise
        except Exception as exc:
            log.error("could not record config_changed: %s: %s", type(exc).__name__, exc)

    def _heartbeat(self, period: float) -> None:
        """Renew and balance every ``period`` seconds until the daemon stops."""
        while not self._heartbeat_stop.wait(period):
            self._service_tick()
            self._balance()

    def _on_missed(self, event: Any) -> None:
        """A fire not run: past the grace time, or the previous cycle still running.

        Called on the scheduler's thread, which must not wait for the database (a running
        cycle may hold its write lock): the fire is queued by the monitor's runner and
        recorded by its next cycle (or at stop), by the monitor's leader only.
        """
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES

        prefix, _, name = str(event.job_id).partition(":")
        runner = self.runners.get(name) if prefix == JOB_PREFIX else None
        if runner is None:
            return
        reason = (
            "the previous cycle was still running"
            if event.code == EVENT_JOB_MAX_INSTANCES
            else "past the misfire grace time"
        )
        times = getattr(event, "scheduled_run_times", None) or [event.scheduled_run_time]
        self.stats.missed += runner.on_missed(list(times), reason)


def lease_seconds(portfolio: Mapping[str, Settings]) -> float:
    """The lease of a daemon running ``portfolio``: the shortest any monitor's settings give
    (the section is the service's; its default follows a monitor's interval)."""
    return min(s.leadership.lease_seconds for s in portfolio.values())
