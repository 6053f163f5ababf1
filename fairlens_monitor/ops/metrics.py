"""The daemon's Prometheus metrics: read from the database and the daemon at scrape time.

simulate → measure → detect → alert → log, **watched**. :class:`FairlensCollector` is a
``prometheus_client`` custom collector: each scrape reads the current values — the newest
monitored reading, open alerts and newest ok run of every monitor of the portfolio, the
chain head, the newest checkpoint, the outbox (once ``notifications`` exists) — in a few
set-wise queries (one index step per monitor), and the daemon's own counters (cycles ok,
failed and missed per monitor, leases, the trail's last self-check) from its memory. Only
the cycle durations are observed where they happen (a histogram fed by each runner).

Labels are bounded: ``monitor`` (the names of the portfolio), ``verdict`` (four values) and
``status`` (three); no label ever carries a group, a value or a message from the data.
Values read from the database are the same on every daemon of a shared database (aggregate
them with ``max by (monitor)``); counters, ``fairlens_is_leader`` and the self-check are
this process's. The HTTP side (``/metrics`` and ``/healthz``) is ``ops.health``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError

from fairlens_monitor.ops.chainwatch import ChainCheck
from fairlens_monitor.ops.runner import MonitorRunner
from fairlens_monitor.store.lease import Lease
from fairlens_monitor.store.models import (
    Alert,
    AuditEvent,
    CheckpointRow,
    Monitor,
    Reading,
    Run,
)
from fairlens_monitor.store.monitor_lease import MonitorLeases

log = logging.getLogger(__name__)
VERDICT_VALUES = ("ok", "inconclusive", "adverse", "no_data")
# 10 ms to 10 min: a simulator cycle is ~0.1 s, a big SQL source's minutes; few buckets, as
# each one is a sample per monitor in every scrape
DURATION_BUCKETS = (0.01, 0.05, 0.25, 1, 5, 30, 120, 600)
OUTBOX_TABLE = "notifications"  # issue 20's outbox (migration 0017), when it exists


class Observed(Protocol):
    """What the collector reads from a running daemon (``ops.daemon.Daemon``)."""

    lease: Lease
    leases: MonitorLeases
    chain_check: ChainCheck

    @property
    def runners(self) -> Mapping[str, MonitorRunner]:
        """Monitor name -> its runner (counters, settings)."""


class FairlensCollector(Collector):
    """Every FairLens metric but the cycle durations, read at scrape time."""

    def __init__(
        self, daemon: Observed, engine: Engine, *, now: Callable[[], datetime] | None = None
    ) -> None:
        """Prepare (nothing is read until a scrape).

        Args:
            daemon: the daemon whose runners, leases and self-check are read.
            engine: a read-only engine on the daemon's database (a scrape never waits for
                the write lock a cycle holds).
            now: the wall clock (checkpoint age); ``datetime.now(UTC)`` when None.
        """
        self.daemon, self.engine = daemon, engine
        self.now = now or (lambda: datetime.now(UTC))
        self._outbox = False  # the table, once seen, stays (no downgrade under a daemon)

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families of one scrape.

        A database that cannot be read leaves its metrics out of this scrape (the daemon's
        own counters are still there; ``/healthz`` says why): Prometheus sees the gap.
        """
        names = list(self.daemon.runners)
        yield from self._process_metrics(names)
        try:
            with self.engine.connect() as conn:
                yield from self._monitor_metrics(conn, names)
                yield from self._service_metrics(conn)
        except SQLAlchemyError as exc:
            log.warning("metrics: the database could not be read (%s)", type(exc).__name__)

    def _process_metrics(self, names: list[str]) -> Iterator[Metric]:
        cycles = CounterMetricFamily(
            "fairlens_cycles",
            "Cycles of a monitor run by this daemon, by outcome (missed: fires not run).",
            labels=["monitor", "status"],
        )
        leader = GaugeMetricFamily(
            "fairlens_is_leader",
            "1 when this daemon leads the monitor (runs its cycles), else 0.",
            labels=["monitor"],
        )
        for name in names:
            stats = self.daemon.runners[name].stats
            cycles.add_metric([name, "ok"], stats.cycles_ok)
            cycles.add_metric([name, "failed"], stats.cycles_failed)
            cycles.add_metric([name, "missed"], stats.missed)
            leader.add_metric([name], 1.0 if self.daemon.leases.leads(name) else 0.0)
        yield cycles
        yield leader
        yield GaugeMetricFamily(
            "fairlens_service_leader",
            "1 when this daemon holds the service lease (retention, backups, the self-check).",
            value=1.0 if self.daemon.lease.leading else 0.0,
        )
        check = self.daemon.chain_check
        if check.walked_at is not None:  # the trail's self-check has run in this process
            yield GaugeMetricFamily(
                "fairlens_verify_ok",
                "1 when this daemon's last walk of the audit trail found it intact.",
                value=1.0 if check.state.intact else 0.0,
            )
            yield GaugeMetricFamily(
                "fairlens_verify_timestamp_seconds",
                "When this daemon's last walk of the audit trail ended (Unix time).",
                value=check.walked_at.timestamp(),
            )

    def _monitor_metrics(self, conn: Any, names: list[str]) -> Iterator[Metric]:
        wanted = set(names)
        newest = (  # the monitor's newest monitored reading: one step down its index
            select(Reading.id)
            .where(Reading.monitor == Monitor.name, Reading.scenario == "monitored")
            .order_by(Reading.id.desc())
            .limit(1)
            .correlate(Monitor)
            .scalar_subquery()
        )
        last_ok = (
            select(Run.finished_at)
            .where(Run.monitor == Monitor.name, Run.status == "ok")
            .order_by(Run.id.desc())
            .limit(1)
            .correlate(Monitor)
            .scalar_subquery()
        )
        rows = conn.execute(
            select(
                Monitor.name,
                last_ok.label("last_ok"),
                Reading.dir,
                Reading.dir_ci_low,
                Reading.dir_ci_high,
                Reading.verdict,
                Reading.drift_statistic,
                Reading.id,
            ).outerjoin(Reading, Reading.id == newest)
        ).all()
        readings = {r.name: r for r in rows if r.name in wanted and r.id is not None}
        ok_runs = {
            r.name: r.last_ok.timestamp()
            for r in rows
            if r.name in wanted and isinstance(r.last_ok, datetime)
        }
        open_alerts = dict.fromkeys(names, 0)
        for monitor, count in conn.execute(
            select(Alert.monitor, func.count())
            .where(Alert.state.in_(("open", "acknowledged")))
            .group_by(Alert.monitor)
        ):
            if monitor in wanted:
                open_alerts[monitor] = int(count)
        yield from _reading_families(names, readings)
        yield _gauge(
            "fairlens_open_alerts",
            "Alert episodes of the monitor that are open or acknowledged.",
            open_alerts,
        )
        yield _gauge(
            "fairlens_last_success_timestamp_seconds",
            "When the monitor's newest ok run finished (Unix time).",
            ok_runs,
        )

    def _service_metrics(self, conn: Any) -> Iterator[Metric]:
        head = conn.execute(select(func.max(AuditEvent.seq))).scalar()
        yield GaugeMetricFamily(
            "fairlens_chain_head_seq",
            "The seq of the audit chain's newest event (0: empty).",
            value=float(head or 0),
        )
        signed = conn.execute(
            select(CheckpointRow.ts).order_by(CheckpointRow.seq.desc()).limit(1)
        ).scalar()
        if signed is not None:
            at = datetime.fromisoformat(str(signed).replace("Z", "+00:00"))
            yield GaugeMetricFamily(
                "fairlens_checkpoint_age_seconds",
                "Seconds since the newest signed checkpoint of the chain head.",
                value=max(0.0, (self.now() - at).total_seconds()),
            )
        if not self._outbox:
            self._outbox = inspect(conn).has_table(OUTBOX_TABLE)
        pending = (
            conn.execute(
                text(f"SELECT count(*) FROM {OUTBOX_TABLE} WHERE status = 'pending'")  # noqa: S608
            ).scalar()
            if self._outbox
            else 0
        )
        yield GaugeMetricFamily(
            "fairlens_outbox_pending",
            "Notifications in the outbox not yet delivered (0 before the outbox exists).",
            value=float(pending or 0),
        )


def _gauge(name: str, doc: str, values: Mapping[str, float | None]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=["monitor"])
    for monitor, value in values.items():
        if value is not None:
            family.add_metric([monitor], float(value))
    return family


def _reading_families(names: Iterable[str], readings: Mapping[str, Any]) -> Iterator[Metric]:
    """The newest monitored reading's figures per monitor (absent when it has none)."""
    columns = {
        "fairlens_dir": ("dir", "Disparate impact ratio of the newest monitored reading."),
        "fairlens_dir_ci_low": ("dir_ci_low", "Lower bound of the DIR's confidence interval."),
        "fairlens_dir_ci_high": ("dir_ci_high", "Upper bound of the DIR's confidence interval."),
        "fairlens_drift_statistic": ("drift_statistic", "CUSUM drift statistic of the reading."),
    }
    for metric, (column, doc) in columns.items():
        yield _gauge(metric, doc, {n: getattr(r, column) for n, r in readings.items()})
    verdict = GaugeMetricFamily(
        "fairlens_verdict",
        "1 for the verdict of the monitor's newest monitored reading, 0 for the others.",
        labels=["monitor", "verdict"],
    )
    for name in names:
        current = readings[name].verdict if name in readings else None
        for value in VERDICT_VALUES:
            verdict.add_metric([name, value], 1.0 if current == value else 0.0)
    yield verdict


class DaemonMetrics:
    """A daemon's registry: the collector plus the cycle-duration histogram."""

    def __init__(self, daemon: Observed, engine: Engine) -> None:
        """Register the collector and the histogram in a registry of this daemon's own.

        Args:
            daemon: the daemon to observe; each of its runners gets ``observe`` set to
                this object's :meth:`observe` (the durations of its cycles).
            engine: a read-only engine on its database (see :class:`FairlensCollector`).
        """
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created samples
        self.registry = CollectorRegistry(auto_describe=False)
        self.durations = Histogram(
            "fairlens_cycle_duration_seconds",
            "Wall time of a monitor's cycles in this daemon (ok and failed).",
            labelnames=["monitor"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(FairlensCollector(daemon, engine))
        for runner in daemon.runners.values():
            runner.observe = self.observe

    def observe(self, monitor: str, seconds: float) -> None:
        """Record one finished cycle's duration (called by the monitor's runner)."""
        self.durations.labels(monitor=monitor).observe(max(0.0, seconds))
