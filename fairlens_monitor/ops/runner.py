"""One monitor inside the daemon: its scheduled job, its source, its failures and missed fires.

simulate/read → measure → detect → alert → **log**, for one monitor of the portfolio.
The daemon (``ops.daemon``) makes one :class:`MonitorRunner` per monitor and one APScheduler
job per runner (each with ``max_instances=1``, coalescing and its own misfire grace). A fire
runs a cycle only when this daemon leads the monitor (its lease, ``store.monitor_lease``)
and the monitor is not paused (``monitors.paused`` in the database); the cycle's writes run
inside the monitor's fencing scope. Anything a monitor's cycle raises — its source missing,
its SQL server down — is that monitor's failed run (recorded on the chain, or kept and
recorded once the database takes writes) and never reaches the other monitors' jobs.
Fires nobody ran (skipped, past the grace time, or during a takeover) become
``cycle_missed`` events naming the monitor, recorded by its next cycle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.audit.events import CYCLE_MISSED
from fairlens_monitor.config.cron import cron_trigger
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.ops import sequence
from fairlens_monitor.ops.console import cycle_lines
from fairlens_monitor.ops.cycle import Clock, FailedCycle, error_text, record_failure
from fairlens_monitor.ops.sealing import Sealer
from fairlens_monitor.security.crypto import AlertCipher
from fairlens_monitor.sources.base import DecisionSource, open_source
from fairlens_monitor.store.lease import FencedError, missed_fires, monitor_scope
from fairlens_monitor.store.monitor_lease import MonitorLeases
from fairlens_monitor.store.repository import Repository

log = logging.getLogger("fairlens_monitor.ops.daemon")
JOB_PREFIX = "fairness-cycle"  # a monitor's job id: fairness-cycle:NAME
MAX_MISSED_EVENTS = 100  # per takeover; further missed fires are counted in the last event


@dataclass
class MonitorStats:
    """Counters of one monitor in one daemon session."""

    cycles_ok: int = 0
    cycles_failed: int = 0
    missed: int = 0
    paused_fires: int = 0
    handled_at: float | None = None  # time.monotonic() of the last fire handled (ops.health)


class Host(Protocol):
    """What a runner needs from its daemon (``ops.daemon.Daemon``)."""

    cipher: AlertCipher
    signer: Ed25519PrivateKey
    clock: Clock
    emit: Callable[[str], None]
    leases: MonitorLeases

    def cycle_done(self, ok: bool) -> None:
        """Count a finished cycle (and stop after ``max_cycles``)."""


def job_id(monitor: str) -> str:
    """The APScheduler job id of ``monitor``'s cycles."""
    return f"{JOB_PREFIX}:{monitor}"


class MonitorRunner:
    """One monitor's job and state; its methods run on worker threads, one at a time."""

    def __init__(
        self, name: str, settings: Settings, repo: Repository, host: Host, sealer: Sealer
    ) -> None:
        """Prepare the monitor (its source is opened at its first cycle).

        Args:
            name: the monitor's name.
            settings: its settings.
            repo: the repository scoped to it.
            host: the daemon.
            sealer: the service's checkpoint policy, attached to ``repo``.
        """
        self.name, self.settings, self.repo, self.host = name, settings, repo, host
        self.sealer = sealer
        self.stats = MonitorStats()
        self.unrecorded: list[FailedCycle] = []
        self.missed: list[tuple[datetime, str]] = []
        self.busy = False
        self.ready = True  # False while a takeover's records are written (heartbeat thread)
        self.first_fire = datetime.now(UTC)
        self._source: DecisionSource | None = None
        self._lock = threading.RLock()  # the cycle vs. the heartbeat's takeover records
        self._trigger: Any = None
        self.observe: Callable[[str, float], None] | None = None  # ops.metrics: durations

    # -- scheduling ---------------------------------------------------------------------

    def schedule(self, start: datetime, offset: float) -> tuple[Any, datetime | None]:
        """Return ``(trigger, first fire)`` for the scheduler; ``offset`` staggers monitors.

        Args:
            start: the daemon's start time.
            offset: seconds after ``start`` of this monitor's first fire (interval only).
        """
        from apscheduler.triggers.interval import IntervalTrigger

        plan = self.settings.schedule
        if plan.cron is not None:
            self._trigger = cron_trigger(plan.cron)
            return self._trigger, None
        self.first_fire = start + timedelta(seconds=offset)
        seconds = plan.interval_seconds or 0.0
        self._trigger = IntervalTrigger(seconds=seconds, start_date=self.first_fire, timezone=UTC)
        return self._trigger, self.first_fire

    def fire_time(self, now: datetime) -> datetime:
        """The fire this run belongs to: the newest fire of the trigger at or before ``now``."""
        plan = self.settings.schedule
        if plan.interval_seconds is not None:
            step = timedelta(seconds=plan.interval_seconds)
            return self.first_fire + step * max(0, (now - self.first_fire) // step)
        return previous_fire(self._trigger, now, plan.misfire_grace_seconds)

    def fires_between(self, last: datetime, now: datetime) -> list[tuple[datetime, str]]:
        """The fires after ``last`` up to ``now`` as ``(when, reason)``, the takeover's
        reason; at most MAX_MISSED_EVENTS listed one by one, the rest counted in one more."""
        plan = self.settings.schedule
        if plan.interval_seconds is not None:
            return missed_fires(last, now, plan.interval_seconds, MAX_MISSED_EVENTS)
        out: list[tuple[datetime, str]] = []
        fire = self._trigger.get_next_fire_time(None, last + timedelta(seconds=1))
        while fire is not None and fire <= now and len(out) < MAX_MISSED_EVENTS:
            out.append((fire, "no leader: takeover"))
            fire = self._trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if fire is not None and fire <= now:
            out.append((fire, "no leader: takeover (more fires not listed one by one)"))
        return out

    # -- the job ------------------------------------------------------------------------

    def run(self) -> None:
        """The scheduled job: one cycle of this monitor, if this daemon leads it."""
        scheduled = self.fire_time(datetime.now(UTC))
        if not (self.ready and self.host.leases.leads(self.name)):
            return
        if self._paused():
            self.stats.paused_fires += 1
            self.stats.handled_at = time.monotonic()
            return
        self.busy = True
        began = time.monotonic()
        try:
            with monitor_scope(self.name), self._lock:
                ok = self._cycle(scheduled)
        finally:
            self.busy = False
        self.stats.handled_at = time.monotonic()
        if ok is not None and self.observe is not None:
            self.observe(self.name, self.stats.handled_at - began)
        if ok is not None:
            self.host.cycle_done(ok)

    def _cycle(self, scheduled: datetime) -> bool | None:
        """Run the cycle; True ok, False failed, None fenced (not counted)."""
        self.record_pending()
        try:
            source = self._open_source()
            outcome = sequence.cycle(
                self.settings,
                self.repo,
                self.host.cipher,
                self.host.signer,
                clock=self.host.clock,
                actor="daemon",
                seal_failed=checkpoint_failed,  # the next due checkpoint covers these events
                scheduled_for=scheduled,
                unrecorded=self.unrecorded,
                source=source,
                sealer=self.sealer,
            )
        except FencedError as exc:  # a takeover happened while this cycle ran
            self.stand_down(str(exc))
            return None
        except _SourceUnavailable as exc:
            self._fail(scheduled, exc.error)
            return False
        except Exception as exc:
            self.stats.cycles_failed += 1
            error = error_text(exc)
            log.error("monitor %s: cycle failed: %s", self.name, error)
            self.host.emit(
                f"✗ {self._label()}cycle failed: {error} (the next cycle will run as scheduled)"
            )
            return False
        self.stats.cycles_ok += 1
        self.record_missed()  # the database takes writes again: the skipped fires too
        prefix = self._label()
        for line in cycle_lines(outcome, echo_plaintext=self.settings.alerts.echo_plaintext):
            self.host.emit(f"{prefix}{line}" if prefix else line)
        return True

    def _label(self) -> str:
        return "" if self.name == "default" else f"[{self.name}] "

    def _open_source(self) -> DecisionSource | None:
        if self._source is None and self.settings.source.kind != "simulator":
            try:
                self._source = open_source(
                    self.settings.source,
                    self.settings.group_spec(),
                    self.settings.measurement.label,
                    self.settings.measurement.score,
                    self.settings.measurement.score_bins,
                )
            except Exception as exc:
                raise _SourceUnavailable(error_text(exc)) from None
        return self._source

    def _fail(self, scheduled: datetime, error: str) -> None:
        """A failure before the cycle could start (the source would not open): a failed run."""
        self.stats.cycles_failed += 1
        now = self.host.clock()
        failed = FailedCycle(now, now, error, "daemon", scheduled)
        if record_failure(self.settings, self.repo, failed) is None:
            self.unrecorded.append(failed)
        self.host.emit(f"✗ {self._label()}cycle failed: {error} (the next cycle will run)")

    def _paused(self) -> bool:
        """Whether the monitor is paused in the database (unreadable: not paused)."""
        try:
            with self.repo.engine.connect() as conn:
                value = conn.execute(
                    text("SELECT paused FROM monitors WHERE name = :m"), {"m": self.name}
                ).scalar()
        except SQLAlchemyError:
            return False  # the cycle itself will fail and be recorded
        return bool(value)

    # -- records ------------------------------------------------------------------------

    def record_pending(self) -> None:
        """Record failures the database refused earlier (e.g. while it was locked)."""
        while (
            self.unrecorded
            and record_failure(self.settings, self.repo, self.unrecorded[0]) is not None
        ):
            self.unrecorded.pop(0)

    def on_missed(self, times: list[datetime], reason: str) -> int:
        """Queue fires not run (called on the scheduler's thread: no database here); return
        how many were queued (none when another daemon leads the monitor)."""
        if not self.host.leases.leads(self.name):
            return 0
        for when in times:
            self.stats.missed += 1
            log.warning(
                "monitor %s: cycle scheduled for %s was missed (%s)", self.name, when, reason
            )
            self.missed.append((when, reason))
        return len(times)

    def missed_since_last_run(self) -> int:
        """Queue a ``cycle_missed`` for each fire between this monitor's last daemon cycle
        and now (after a takeover), then record them; return how many were queued."""
        try:
            with self.repo.engine.connect() as conn:
                last = conn.execute(
                    text(
                        "SELECT max(started_at) FROM runs WHERE actor = 'daemon' AND monitor = :m"
                    ),
                    {"m": self.name},
                ).scalar()
        except SQLAlchemyError:
            return 0
        if not isinstance(last, datetime):
            return 0
        fires = self.fires_between(last, self.host.clock())
        self.missed.extend(fires)
        self.stats.missed += len(fires)
        self.record_missed()
        return len(fires)

    def record_missed(self) -> None:
        """Record the queued missed fires as ``cycle_missed`` events, oldest first."""
        with monitor_scope(self.name), self._lock:
            while self.missed:
                when, reason = self.missed[0]
                try:
                    self.repo.append_event(
                        CYCLE_MISSED,
                        "daemon",
                        {"monitor": self.name, "scheduled_for": rfc3339(when), "reason": reason},
                        ts=rfc3339(self.host.clock()),
                    )
                except FencedError as exc:
                    self.stand_down(str(exc))
                    return
                except Exception as exc:
                    log.error("could not record cycle_missed yet: %s", error_text(exc))
                    return
                self.missed.pop(0)

    def stand_down(self, reason: str) -> None:
        """This daemon lost the monitor: say so, and leave its records to the new leader."""
        message = (
            f"stood down: this daemon lost the lead of monitor {self.name} ({reason}); "
            "it writes nothing for it"
        )
        log.warning(message)
        self.host.emit(message)
        self.unrecorded.clear()
        self.missed.clear()

    def close(self) -> None:
        """Close the monitor's source (if it was opened)."""
        if self._source is not None:
            self._source.close()


class _SourceUnavailable(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def previous_fire(trigger: Any, now: datetime, grace: float) -> datetime:
    """The newest fire of ``trigger`` at or before ``now`` (pure).

    Looks back the grace time and a minute first (a fire runs within its grace), then ever
    further, up to 400 days; ``now`` when the trigger never fired in that time.
    """
    window = timedelta(seconds=grace + 60)
    while window <= timedelta(days=400):
        fire = trigger.get_next_fire_time(None, now - window)
        best: datetime | None = None
        while fire is not None and fire <= now:
            best = fire
            fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        if best is not None:
            return best
        window *= 4
    return now


def checkpoint_failed(exc: Exception) -> None:
    """Log a failed checkpoint (the next due checkpoint covers these events too)."""
    log.error("checkpoint failed: %s: %s", type(exc).__name__, exc)
