"""One monitoring cycle: simulate → measure → detect → alert → log, glued in one place.

``measure_cycle`` is pure (its inputs fix its output). ``run_cycle`` adds the edges: the
clock, the Fernet key and one database transaction holding the run, both readings, the
alert and the audit events. ``execute_cycle`` records a cycle that raised as a failed run
(plus a ``cycle_failed`` audit event) before re-raising, so no failure goes unrecorded.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DBAPIError

from fairlens_monitor import __version__
from fairlens_monitor.audit import AuditRecord, rfc3339
from fairlens_monitor.config import Settings
from fairlens_monitor.crypto import AlertCipher
from fairlens_monitor.explain import analyze_feature_impact, generate_explanation
from fairlens_monitor.metrics import calculate_disparate_impact_ratio
from fairlens_monitor.simulate import generate_loan_data, scenario_seed
from fairlens_monitor.store.models import Alert, Reading, Run
from fairlens_monitor.store.repository import EventList, Repository

Clock = Callable[[], datetime]
log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 2000


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime (the production clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ScenarioResult:
    """One measured scenario: its inputs (enough to reproduce it) and its metrics."""

    scenario: str
    drift_level: float
    n_samples: int
    seed: int
    metrics: dict[str, Any]
    explanation: str | None


@dataclass(frozen=True)
class CycleOutcome:
    """What a committed cycle measured and stored."""

    run_id: int
    cycle_index: int
    started_at: datetime
    finished_at: datetime
    reference: ScenarioResult
    monitored: ScenarioResult
    alert_id: int | None
    token: str | None
    audit: list[AuditRecord]


def measure_scenario(settings: Settings, cycle_index: int, scenario: str,
                     drift_level: float) -> ScenarioResult:
    """Simulate and measure one scenario of one cycle (pure).

    Args:
        settings: validated settings (sample size, seed, thresholds).
        cycle_index: zero-based index of the cycle; with the base seed it fixes the data.
        scenario: ``reference`` or ``monitored``.
        drift_level: the drift level to simulate.

    Returns:
        The scenario's inputs, metrics and (for ``monitored``) explanation.
    """
    seed = scenario_seed(settings.simulation.seed, cycle_index, scenario)
    df = generate_loan_data(settings.simulation.n_samples, drift_level, seed=seed)
    t = settings.thresholds
    metrics = calculate_disparate_impact_ratio(df, dir_threshold=t.dir, gap_threshold=t.gap)
    explanation = None
    if scenario == "monitored":
        causes = analyze_feature_impact(df)["causes"]
        explanation = generate_explanation(metrics["dir"], causes, threshold=t.dir)
    return ScenarioResult(scenario, drift_level, len(df), seed, metrics, explanation)


def measure_cycle(settings: Settings, cycle_index: int) -> tuple[ScenarioResult, ScenarioResult]:
    """Measure the reference (drift 0) and the monitored scenario of a cycle (pure).

    Args:
        settings: validated settings; ``simulation.drift`` gives the monitored drift level.
        cycle_index: zero-based cycle index.

    Returns:
        ``(reference, monitored)``.
    """
    level = settings.simulation.drift.level_at(cycle_index)
    return (measure_scenario(settings, cycle_index, "reference", 0.0),
            measure_scenario(settings, cycle_index, "monitored", level))


def run_cycle(settings: Settings, repo: Repository, cipher: AlertCipher, *, clock: Clock,
              actor: str, cycle_index: int | None = None,
              scheduled_for: datetime | None = None) -> CycleOutcome:
    """Run one cycle and commit everything it produced in one transaction.

    Args:
        settings: validated settings.
        repo: the repository to write to.
        cipher: encrypts the explanation when the monitored DIR raises an alert.
        clock: returns the current aware UTC time.
        actor: ``daemon`` or ``cli``, recorded on the run and its audit events.
        cycle_index: defaults to the number of completed cycles in the database.
        scheduled_for: when the scheduler meant this cycle to run, if it was scheduled.

    Returns:
        The committed outcome.

    Raises:
        Exception: anything measurement or storage raised; nothing was committed.
    """
    started = clock()
    index = repo.completed_cycles() if cycle_index is None else cycle_index
    reference, monitored = measure_cycle(settings, index)
    token = cipher.encrypt(monitored.explanation or "") if monitored.metrics["dir_alert"] else None
    finished = clock()
    config_hash = settings.config_hash()
    run = Run(cycle_index=index, actor=actor, scheduled_for=scheduled_for, started_at=started,
              finished_at=finished, status="ok", error=None, config_hash=config_hash,
              code_version=__version__)
    readings = [_reading(r, settings, finished, config_hash) for r in (reference, monitored)]
    alert = None
    if token is not None:
        alert = (Alert(created_at=finished, kind="dir", dir=monitored.metrics["dir"],
                       token=token, key_id=cipher.key_id, state="open"), readings[1])

    def events(run: Run, rows: Sequence[Reading], alert_row: Alert | None) -> EventList:
        out: EventList = [("cycle_completed", {
            "run_id": run.id, "cycle_index": index, "drift_level": monitored.drift_level,
            "config_hash": config_hash, "code_version": __version__,
            "readings": [_reading_summary(row) for row in rows],
        })]
        if alert_row is not None:
            out.append(("alert_raised", {
                "alert_id": alert_row.id, "run_id": run.id, "reading_id": alert_row.reading_id,
                "kind": alert_row.kind, "dir": alert_row.dir, "key_id": alert_row.key_id,
                "token_sha256": hashlib.sha256(alert_row.token.encode("ascii")).hexdigest(),
            }))
        return out

    saved = repo.save_cycle(run, readings, alert, events, actor=actor, ts=rfc3339(finished))
    return CycleOutcome(saved.run_id, index, started, finished, reference, monitored,
                        saved.alert_id, token, saved.events)


@dataclass(frozen=True)
class FailedCycle:
    """A cycle that raised, waiting to be recorded as a failed run."""

    started_at: datetime
    finished_at: datetime
    error: str
    actor: str
    scheduled_for: datetime | None


def error_text(exc: BaseException) -> str:
    """Describe a failure in one line, truncated to ``MAX_ERROR_CHARS``.

    A database error is described by the driver's own message ("OperationalError: database
    is locked"), not SQLAlchemy's full text, which repeats the SQL and its parameters.
    """
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


def execute_cycle(settings: Settings, repo: Repository, cipher: AlertCipher, *, clock: Clock,
                  actor: str, scheduled_for: datetime | None = None,
                  unrecorded: list[FailedCycle] | None = None) -> CycleOutcome:
    """Run a cycle; if it raises, record a failed run and audit event, then re-raise.

    Args:
        settings: validated settings.
        repo: the repository.
        cipher: the alert cipher.
        clock: returns the current aware UTC time.
        actor: ``daemon`` or ``cli``.
        scheduled_for: the scheduled fire time, if any.
        unrecorded: where to keep a failure the database refused to record (e.g. while it
            is locked), so the caller can record it later with :func:`record_failure`.

    Returns:
        The committed outcome.

    Raises:
        Exception: whatever the cycle raised, after the failure was recorded (or kept in
            ``unrecorded``, or logged when there is no such list).
    """
    started = clock()
    try:
        return run_cycle(settings, repo, cipher, clock=clock, actor=actor,
                         scheduled_for=scheduled_for)
    except Exception as exc:
        failed = FailedCycle(started, clock(), error_text(exc), actor, scheduled_for)
        if record_failure(settings, repo, failed) is None and unrecorded is not None:
            unrecorded.append(failed)
        raise


def record_failure(settings: Settings, repo: Repository, failed: FailedCycle) -> int | None:
    """Store a failed run and its ``cycle_failed`` audit event; never raises.

    Args:
        settings: validated settings (for the config hash).
        repo: the repository.
        failed: what failed and when.

    Returns:
        The failed run's id, or None when the database refused the record too (the caller
        may keep ``failed`` and try again later).
    """
    try:
        index = repo.completed_cycles()
        run = Run(cycle_index=index, actor=failed.actor, scheduled_for=failed.scheduled_for,
                  started_at=failed.started_at, finished_at=failed.finished_at,
                  status="failed", error=failed.error, config_hash=settings.config_hash(),
                  code_version=__version__)
        saved = repo.save_failed_run(run, {"cycle_index": index, "error": failed.error},
                                     ts=rfc3339(failed.finished_at))
    except Exception as store_exc:  # the database itself may be what failed
        log.error("cycle failed (%s) and the failure could not be recorded yet: %s: %s",
                  failed.error, type(store_exc).__name__, store_exc)
        return None
    return saved.run_id


def _reading(r: ScenarioResult, settings: Settings, at: datetime, config_hash: str) -> Reading:
    m, d = r.metrics, r.metrics["details"]
    return Reading(
        scenario=r.scenario, measured_at=at, source="simulator", drift_level=r.drift_level,
        n_samples=r.n_samples, seed=r.seed, protected_attribute=d["protected_attribute"],
        unprivileged_group=str(d["protected_value"]), privileged_group=str(d["privileged_value"]),
        unprivileged_count=d["female_count"], unprivileged_approved=d["female_approved"],
        privileged_count=d["male_count"], privileged_approved=d["male_approved"],
        unprivileged_rate=m["female_rate"], privileged_rate=m["male_rate"], dir=m["dir"],
        dir_reason=m["reason"], gap=m["gap"], dir_threshold=settings.thresholds.dir,
        gap_threshold=settings.thresholds.gap, dir_alert=m["dir_alert"],
        gap_alert=m["gap_alert"], config_hash=config_hash, code_version=__version__,
    )


def _reading_summary(row: Reading) -> dict[str, Any]:
    return {
        "reading_id": row.id, "scenario": row.scenario, "seed": row.seed,
        "n_samples": row.n_samples, "drift_level": row.drift_level, "dir": row.dir,
        "gap": row.gap, "dir_alert": row.dir_alert, "gap_alert": row.gap_alert,
        "unprivileged": [row.unprivileged_approved, row.unprivileged_count],
        "privileged": [row.privileged_approved, row.privileged_count],
    }
