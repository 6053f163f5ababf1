"""The daemon's duties as a member of a group of daemons: the lease and the missed fires.

simulate → measure → detect → alert → **log**, scheduled. :class:`Leadership` is the part of
:class:`~fairlens_monitor.ops.daemon.Daemon` that takes, renews and loses the leadership
lease (``store.lease``; on PostgreSQL several daemons share a database and exactly one runs
the cycles), records ``daemon_leading`` and the ``config_changed`` of the rules it brings,
and turns fires nobody ran (skipped, past the grace time, or during a takeover) into
``cycle_missed`` events — queued on the scheduler's thread, written by the next cycle.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES
from sqlalchemy.exc import SQLAlchemyError

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.audit.events import (
    CYCLE_MISSED,
    DAEMON_LEADING,
)
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.ops.cycle import (
    Clock,
    FailedCycle,
    error_text,
)
from fairlens_monitor.ops.governance import record_config_change
from fairlens_monitor.store.lease import (
    Change,
    Lease,
    last_daemon_run,
    missed_fires,
)
from fairlens_monitor.store.repository import Repository

# the daemon's logger: these lines were the daemon's before the split, and operators filter on it
log = logging.getLogger("fairlens_monitor.ops.daemon")
JOB_ID = "fairness-cycle"
MAX_MISSED_EVENTS = 100  # per takeover; further missed fires are counted in the last event


@dataclass
class DaemonStats:
    """Counters of one daemon session."""

    cycles_ok: int = 0
    cycles_failed: int = 0
    missed: int = 0
    stop_reason: str = ""


class Leadership:
    """Lease and missed-fire handling of a daemon (the base of ``Daemon``)."""

    settings: Settings
    repo: Repository
    lease: Lease
    clock: Clock
    emit: Callable[[str], None]
    unrecorded: list[FailedCycle]
    stats: DaemonStats
    _missed: list[tuple[datetime, str]]
    _lead_lock: threading.RLock
    _start_change: Change | None
    _first_fire: datetime
    _heartbeat_stop: threading.Event

    def _lead(self, scheduled: datetime | None, *, announce: bool = True) -> bool:
        """Renew or take the lease; say so when that changes (standbys skip the cycle).

        When the server cannot be reached, no daemon can run the cycle; the one that led
        keeps the failure to record once the database is back (as for any failed cycle).
        """
        with self._lead_lock:
            was = self.lease.leading
            try:
                change = self.lease.tick()
            except SQLAlchemyError as exc:
                error = error_text(exc)
                self.emit(f"✗ cannot reach the database to take the lead: {error}")
                if was and scheduled is not None:
                    now = self.clock()
                    self.unrecorded.append(FailedCycle(now, now, error, "daemon", scheduled))
                    self.stats.cycles_failed += 1
                return False
            self._start_change = change
            if change is not None and announce:
                if change.action == "lead":
                    self._record_config_change()
                    self._announce_lead(change)
                else:
                    self._stand_down(change.reason)
            return self.lease.leading

    def _announce_lead(self, change: Change | None) -> None:
        """Record ``daemon_leading`` (with why) and the fires nobody ran before it."""
        if change is None:
            return
        self._event(
            DAEMON_LEADING,
            {
                "pid": os.getpid(),
                "holder": self.lease.holder,
                "epoch": change.epoch,
                "reason": change.reason,
                "previous_holder": change.previous_holder,
            },
        )
        if change.expired:  # a clean stop hands over at once; a lapsed lease left a gap
            self._missed_during_takeover()
        self.emit(
            f"leading: this daemon (pid {os.getpid()}) runs the cycles "
            f"(epoch {change.epoch}: {change.reason})"
        )

    def _missed_during_takeover(self) -> None:
        """Record a ``cycle_missed`` for every fire between the last daemon cycle and now."""
        try:
            last = last_daemon_run(self.repo.engine)
        except SQLAlchemyError:
            return
        self._missed.extend(
            missed_fires(
                last, self.clock(), self.settings.schedule.interval_seconds, MAX_MISSED_EVENTS
            )
        )
        self._record_missed()

    def _stand_down(self, reason: str) -> None:
        message = (
            f"stood down: this daemon lost the lead ({reason}); it stands by and writes nothing"
        )
        log.warning(message)
        self.emit(message)
        self.unrecorded.clear()  # the new leader records the cycles from here on

    def _record_config_change(self) -> None:
        try:
            record_config_change(
                self.settings, self.repo, actor="daemon", ts=rfc3339(self.clock()), initial=False
            )
        except Exception as exc:
            log.error("could not record config_changed: %s: %s", type(exc).__name__, exc)

    def _heartbeat(self) -> None:
        """Renew the lease (leader) or watch for it to expire (standby), a third of it apart."""
        period = self.settings.leadership.lease_seconds / 3
        while not self._heartbeat_stop.wait(period):
            self._lead(None)

    def _fire_time(self, now: datetime) -> datetime:
        """The trigger fire time this run belongs to (fires are first + k * interval)."""
        step = timedelta(seconds=self.settings.schedule.interval_seconds)
        return self._first_fire + step * max(0, (now - self._first_fire) // step)

    def _on_missed(self, event: Any) -> None:
        """A fire not run: past the grace time, or the previous cycle still running.

        Called on the scheduler's thread, which must not wait for the database (a running
        cycle may hold its write lock): the event is queued and recorded by the next cycle
        (or at stop), by the leader only.
        """
        if event.job_id != JOB_ID or not self.lease.leading:
            return
        reason = (
            "the previous cycle was still running"
            if event.code == EVENT_JOB_MAX_INSTANCES
            else "past the misfire grace time"
        )
        times = getattr(event, "scheduled_run_times", None) or [event.scheduled_run_time]
        for when in times:
            self.stats.missed += 1
            log.warning("cycle scheduled for %s was missed (%s)", when, reason)
            self._missed.append((when, reason))

    def _record_missed(self) -> None:
        """Record the queued missed fires as ``cycle_missed`` events, oldest first."""
        with self._lead_lock:
            while self._missed:
                when, reason = self._missed[0]
                try:
                    self.repo.append_event(
                        CYCLE_MISSED,
                        "daemon",
                        {"scheduled_for": rfc3339(when), "reason": reason},
                        ts=rfc3339(self.clock()),
                    )
                except Exception as exc:
                    log.error("could not record cycle_missed yet: %s", error_text(exc))
                    return
                self._missed.pop(0)

    def _event(self, kind: str, payload: dict[str, Any]) -> None:
        try:
            self.repo.append_event(kind, "daemon", payload, ts=rfc3339(self.clock()))
        except Exception as exc:
            log.error("could not record %s: %s: %s", kind, type(exc).__name__, exc)
