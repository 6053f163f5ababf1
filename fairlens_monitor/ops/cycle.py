"""One monitoring cycle: simulate/read → measure → detect → alert → log, glued in one place.

``measure.measure_cycle`` and ``measure.measure_counts`` are pure (their inputs fix their
output). ``run_cycle`` adds the edges: the clock, the decisions (simulated, or read from the
configured file or SQL source with their lineage), the drift chart's state from earlier
readings, the Fernet key and one database transaction holding the run, its readings with
their group results, the files read, the alert episode transitions and the audit events. An
empty window gives a ``no_data`` reading that neither raises nor closes an alert.
``execute_cycle`` records a cycle that raised as a failed run (plus a ``cycle_failed``
audit event) before re-raising, so no failure goes unrecorded.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from sqlalchemy.exc import DBAPIError

from fairlens_monitor import __version__
from fairlens_monitor.audit.chain import AuditRecord, rfc3339
from fairlens_monitor.audit.events import (
    ALERT_RAISED,
    ALERT_RESOLVED,
    CYCLE_COMPLETED,
    SOURCE_FILE_CHANGED,
)
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.monitoring.measure import (
    DriftState,
    ScenarioResult,
    baseline_from_rows,
    measure_counts,
)
from fairlens_monitor.ops.measuring import measure_cycle, rules_of
from fairlens_monitor.ops.sealing import Sealer
from fairlens_monitor.security.crypto import AlertCipher
from fairlens_monitor.security.masking import mask
from fairlens_monitor.security.passwords import scrub
from fairlens_monitor.sources.base import Batch, DecisionSource, open_source
from fairlens_monitor.store.cyclewrite import AlertChange, EventList, StaleCycleError
from fairlens_monitor.store.lease import FencedError
from fairlens_monitor.store.mappers import (
    NO_DATA,
    OnDemand,
    alert_row,
    group_rows,
    no_data_reading,
    reading_row,
    reading_summary,
    set_lineage,
    source_file_rows,
)
from fairlens_monitor.store.models import Alert, Reading, Run
from fairlens_monitor.store.monitors import row_for
from fairlens_monitor.store.repository import Repository

Clock = Callable[[], datetime]
log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 2000
MAX_ATTEMPTS = 100  # lost commit races in a row before a cycle gives up (see run_cycle)


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime (the production clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class CycleOutcome:
    """What a committed cycle measured and stored."""

    run_id: int
    cycle_index: int
    started_at: datetime
    finished_at: datetime
    reference: ScenarioResult | None  # simulator only
    monitored: ScenarioResult | None  # None: the source's window held no decisions
    alert_id: int | None
    token: str | None
    audit: list[AuditRecord]
    alerts: list[AlertChange]
    batch: Batch | None = None  # what a file or SQL source read

    @property
    def verdict(self) -> str:
        """The monitored reading's verdict, or ``no_data``."""
        return self.monitored.verdict if self.monitored is not None else NO_DATA


def run_cycle(
    settings: Settings,
    repo: Repository,
    cipher: AlertCipher,
    *,
    clock: Clock,
    actor: str,
    cycle_index: int | None = None,
    scheduled_for: datetime | None = None,
    source: DecisionSource | None = None,
    sealer: Sealer | None = None,
) -> CycleOutcome:
    """Run one cycle and commit everything it produced in one transaction.

    The cycle index and the drift history are read before measuring, and checked again
    under the chain lock at commit: when another process (``once`` beside a daemon, cron on
    two hosts) committed a cycle in between, this one is measured again from the new
    position, so every committed cycle has its own index and the true predecessor.
    Arguments, return value and errors as :func:`_attempt_cycle`; also raises
    ``StaleCycleError`` after ``MAX_ATTEMPTS`` lost races in a row.
    """
    for attempt in range(MAX_ATTEMPTS):
        try:
            return _attempt_cycle(
                settings,
                repo,
                cipher,
                clock=clock,
                actor=actor,
                cycle_index=cycle_index,
                scheduled_for=scheduled_for,
                source=source,
                sealer=sealer,
            )
        except StaleCycleError:
            if attempt == MAX_ATTEMPTS - 1:
                raise StaleCycleError(
                    f"{MAX_ATTEMPTS} other cycles were committed while this "
                    "one measured; not stored"
                ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _attempt_cycle(
    settings: Settings,
    repo: Repository,
    cipher: AlertCipher,
    *,
    clock: Clock,
    actor: str,
    cycle_index: int | None = None,
    scheduled_for: datetime | None = None,
    source: DecisionSource | None = None,
    sealer: Sealer | None = None,
) -> CycleOutcome:
    """Measure from the current position and commit, unless another cycle got there first.

    Args:
        settings: validated settings (of the repository's monitor).
        repo: the repository to write to: its monitor's cycle index, drift history and
            alert episodes are read, and its rows and events name that monitor.
        cipher: encrypts the explanation when the monitored DIR raises an alert.
        clock: returns the current aware UTC time.
        actor: ``daemon`` or ``cli``, recorded on the run and its audit events.
        cycle_index: defaults to the number of completed cycles in the database.
        scheduled_for: when the scheduler meant this cycle to run, if it was scheduled.
        source: an open file or SQL source (the daemon keeps one); None opens the
            configured one for this cycle only. Ignored for the simulator.
        sealer: signs a checkpoint in the cycle's transaction when one is due (an alert
            opened or resolved, or ``audit.checkpoint_seconds`` passed) and anchors it
            after the commit; None signs none here.

    Returns:
        The committed outcome.

    Raises:
        StaleCycleError: another process committed a cycle meanwhile; nothing was committed.
        Exception: anything reading, measurement or storage raised (a bad file is a
            ``DataError`` naming it); nothing was committed.
    """
    started = clock()
    position, rows, previous = repo.cycle_inputs(
        settings.group_spec().attribute_name, settings.drift_detection.baseline_readings
    )
    index = position[0] if cycle_index is None else cycle_index
    drift = DriftState(baseline_from_rows(rows), previous)
    batch: Batch | None = None
    reference: ScenarioResult | None
    monitored: ScenarioResult | None
    if settings.source.kind == "simulator":
        reference, monitored = measure_cycle(settings, index, drift)
        scenarios: list[ScenarioResult] = [reference, monitored]
    else:
        batch = _read(settings, repo, source, started)
        reference, monitored = (
            None,
            (measure_counts(batch.counts, rules_of(settings), drift) if batch.decisions else None),
        )
        scenarios = [monitored] if monitored is not None else []
    raising = ("adverse", "inconclusive") if settings.alerts.notify_inconclusive else ("adverse",)
    qualifies = (
        {}
        if monitored is None
        else {"dir": monitored.verdict in raising, "drift": monitored.drift_alert}
    )
    finished = clock()
    candidates = OnDemand(
        {
            kind: partial(_candidate, kind, monitored, finished, cipher)
            for kind, yes in qualifies.items()
            if yes and monitored is not None
        }
    )
    config_hash = settings.config_hash()
    run = Run(
        cycle_index=index,
        actor=actor,
        scheduled_for=scheduled_for,
        started_at=started,
        finished_at=finished,
        status="ok",
        error=None,
        config_hash=config_hash,
        code_version=__version__,
    )
    readings = [reading_row(r, settings, finished, config_hash) for r in scenarios]
    groups = [group_rows(r) for r in scenarios]
    if batch is not None:
        if monitored is None:
            readings, groups = [no_data_reading(settings, finished, config_hash)], [[]]
        # Per-group AUC and calibration gap (measurement.score): the reading's JSON column
        # holds them, so no new columns are needed.
        outcome = monitored.outcome if monitored is not None else None
        extra = outcome.extra if outcome is not None else None
        set_lineage(readings[-1], batch, extra)
    files = source_file_rows(batch, finished)

    def events(run: Run, rows: Sequence[Reading], changes: Sequence[AlertChange]) -> EventList:
        out: EventList = [
            (SOURCE_FILE_CHANGED, {**change, "run_id": run.id})
            for change in (batch.changed if batch else ())
        ]
        out.append(
            (
                CYCLE_COMPLETED,
                {
                    "run_id": run.id,
                    "cycle_index": index,
                    "drift_level": monitored.drift_level if monitored else None,
                    "config_hash": config_hash,
                    "code_version": __version__,
                    "readings": [
                        reading_summary(row, g) for row, g in zip(rows, groups, strict=True)
                    ],
                    **({} if batch is None else {"source": batch.summary()}),
                },
            )
        )
        for change in changes:
            if change.action == "open":
                out.append(
                    (
                        ALERT_RAISED,
                        {
                            "alert_id": change.alert.id,
                            "run_id": run.id,
                            "reading_id": change.alert.reading_id,
                            "kind": change.alert.kind,
                            "verdict": change.alert.verdict,
                            "dir": change.alert.dir,
                            "key_id": change.alert.key_id,
                            "token_sha256": hashlib.sha256(
                                change.alert.token.encode("ascii")
                            ).hexdigest(),
                        },
                    )
                )
            elif change.action == "resolve":
                out.append(
                    (
                        ALERT_RESOLVED,
                        {
                            "alert_ids": change.resolved_ids,
                            "kind": change.alert.kind,
                            "run_id": run.id,
                            "by": "auto",
                            "note": f"{change.alert.clean_streak} consecutive readings without "
                            f"{'an adverse verdict' if change.alert.kind == 'dir' else 'drift'}",
                        },
                    )
                )
        return out

    saved = repo.save_cycle(
        run,
        readings,
        groups,
        candidates,
        qualifies,
        events,
        close_after=settings.alerts.close_after,
        actor=actor,
        ts=rfc3339(finished),
        files=files,
        judge=monitored is not None,
        expect=position,
        seal=sealer,
        listing=row_for(repo.monitor, settings, started),
        routes=settings.notify.routes(),
    )
    if sealer is not None and saved.checkpoint is not None:
        sealer.anchor(saved.checkpoint)
    opened = [c for c in saved.alerts if c.action == "open"]
    token = opened[0].alert.token if opened else None
    return CycleOutcome(
        saved.run_id,
        index,
        started,
        finished,
        reference,
        monitored,
        opened[0].alert.id if opened else None,
        token,
        saved.events,
        saved.alerts,
        batch,
    )


def _candidate(kind: str, monitored: ScenarioResult, at: datetime, cipher: AlertCipher) -> Alert:
    """The alert row a new episode of ``kind`` opens with (explanation encrypted)."""
    return alert_row(
        kind, monitored, at, cipher.encrypt(monitored.explanation or ""), cipher.key_id
    )


def _read(
    settings: Settings, repo: Repository, source: DecisionSource | None, now: datetime
) -> Batch:
    """Read the window from the given source, or from one opened for this cycle."""
    own = source is None
    if source is None:
        m = settings.measurement
        source = open_source(settings.source, settings.group_spec(), m.label, m.score, m.score_bins)
    if source is None:
        raise ValueError("the simulator has no decision source to read")
    try:
        return source.read(now, repo.seen_files())
    finally:
        if own:
            source.close()


@dataclass(frozen=True)
class FailedCycle:
    """A cycle that raised, waiting to be recorded as a failed run."""

    started_at: datetime
    finished_at: datetime
    error: str
    actor: str
    scheduled_for: datetime | None


def error_text(exc: BaseException) -> str:
    """Describe a failure in one masked line (it is chained), cut at ``MAX_ERROR_CHARS``.

    A database error is described by the driver's own message, not SQLAlchemy's full text."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    return mask(scrub(f"{type(exc).__name__}: {exc}"))[:MAX_ERROR_CHARS]


def execute_cycle(
    settings: Settings,
    repo: Repository,
    cipher: AlertCipher,
    *,
    clock: Clock,
    actor: str,
    scheduled_for: datetime | None = None,
    unrecorded: list[FailedCycle] | None = None,
    source: DecisionSource | None = None,
    sealer: Sealer | None = None,
) -> CycleOutcome:
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
        source: an open decision source to read from (see :func:`run_cycle`).
        sealer: signs due checkpoints in the cycle's transaction (see :func:`run_cycle`).

    Returns:
        The committed outcome.

    Raises:
        FencedError: the daemon lost its lease meanwhile; nothing is recorded.
        Exception: whatever the cycle raised, after the failure was recorded (or kept in
            ``unrecorded``, or logged when there is no such list).
    """
    started = clock()
    try:
        return run_cycle(
            settings,
            repo,
            cipher,
            clock=clock,
            actor=actor,
            scheduled_for=scheduled_for,
            source=source,
            sealer=sealer,
        )
    except FencedError:
        raise  # this daemon lost the lead: the new leader records what happens now
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
        run = Run(
            cycle_index=index,
            actor=failed.actor,
            scheduled_for=failed.scheduled_for,
            started_at=failed.started_at,
            finished_at=failed.finished_at,
            status="failed",
            error=failed.error,
            config_hash=settings.config_hash(),
            code_version=__version__,
        )
        saved = repo.save_failed_run(
            run,
            {"cycle_index": index, "error": failed.error},
            ts=rfc3339(failed.finished_at),
            listing=row_for(repo.monitor, settings, failed.started_at),
            routes=settings.notify.routes(),
            failing_after=settings.notify.source_failing_after,
        )
    except Exception as store_exc:  # the database itself may be what failed
        log.error(
            "cycle failed (%s) and the failure could not be recorded yet: %s: %s",
            failed.error,
            type(store_exc).__name__,
            store_exc,
        )
        return None
    return saved.run_id
