"""A cycle's write transaction, in SQLAlchemy Core: the hot path of the **log** step.

simulate → measure → detect → alert → **log**. ``Repository.save_cycle`` opens the session
(so the lease's fencing hook still checks the epoch inside the transaction, at commit) and
calls :func:`write_cycle`, which writes on the session's connection with plain Core
statements: one ``INSERT`` per table (``RETURNING`` the ids), the episode transitions as
``UPDATE``s of the alert rows, the row digests read back as stored, and the audit events in
one ``INSERT``. The model instances the cycle built are data carriers only: their ids are
filled in here, but they never enter the session, so there is no unit of work, identity map
or autoflush to pay for on every cycle.

Every query a cycle makes here is an index lookup whose cost does not grow with history nor
with the other monitors' rows (revision 0015): :func:`position` reads the monitor's newest
``ok`` run through ``ix_runs_monitor_status_id``; the drift history its readings through
``ix_readings_monitor_id``; open alerts through ``ix_alerts_monitor_state``; the chain head
through ``ix_audit_events_seq``. Every row the cycle writes carries its monitor, and every
event it appends names it (``"monitor": NAME``); the chain itself is one for all monitors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, bindparam, select, text, update
from sqlalchemy.orm import Session

from fairlens_monitor.audit.chain import GENESIS_HASH, AuditRecord, build_record
from fairlens_monitor.audit.checkpoints import Checkpoint
from fairlens_monitor.audit.events import MONITOR_ADDED
from fairlens_monitor.monitoring import episodes
from fairlens_monitor.store import monitors, outbox, rollup
from fairlens_monitor.store.db import CHAIN_LOCK_KEY
from fairlens_monitor.store.models import (
    Alert,
    AuditEvent,
    Base,
    GroupResult,
    Reading,
    Run,
    SourceFile,
)
from fairlens_monitor.store.prepared import insert_values
from fairlens_monitor.store.rowstore import attach, row_digests
from fairlens_monitor.store.rowvalues import inserted_digests

EventList = list[tuple[str, dict[str, Any]]]

RUNS: Table = Run.__table__  # type: ignore[assignment]
READINGS: Table = Reading.__table__  # type: ignore[assignment]
GROUPS: Table = GroupResult.__table__  # type: ignore[assignment]
FILES: Table = SourceFile.__table__  # type: ignore[assignment]
ALERTS: Table = Alert.__table__  # type: ignore[assignment]
EVENTS: Table = AuditEvent.__table__  # type: ignore[assignment]

# The cycle's statements, built once: building a statement and its cache key costs more
# than SQLite takes to run it.
POSITION = (
    select(RUNS.c.cycle_index, RUNS.c.id)
    .where(RUNS.c.monitor == bindparam("monitor"), RUNS.c.status == "ok")
    .order_by(RUNS.c.id.desc())
    .limit(1)
)
OPEN_ALERTS = (
    select(ALERTS)
    .where(
        ALERTS.c.monitor == bindparam("monitor"),
        ALERTS.c.state.in_(("open", "acknowledged")),
    )
    .order_by(ALERTS.c.id.desc())
)
UPDATE_ALERT = update(ALERTS).where(ALERTS.c.id == bindparam("alert_id"))
HEAD = select(EVENTS.c.seq, EVENTS.c.hash).order_by(EVENTS.c.seq.desc()).limit(1)
_ASSESSED = (
    (READINGS.c.monitor == bindparam("monitor"))
    & (READINGS.c.scenario == "monitored")
    & READINGS.c.verdict.is_not(None)
    & (READINGS.c.verdict != "no_data")
    & (READINGS.c.protected_attribute == bindparam("attribute"))
)
DRIFT_BASELINE = (
    select(
        READINGS.c.group_approved,
        READINGS.c.group_applicants,
        READINGS.c.reference_approved,
        READINGS.c.reference_applicants,
    )
    .where(_ASSESSED)
    .order_by(READINGS.c.id)
    .limit(bindparam("baseline"))
)
DRIFT_PREVIOUS = (
    select(READINGS.c.drift_statistic).where(_ASSESSED).order_by(READINGS.c.id.desc()).limit(1)
)


@dataclass(frozen=True)
class AlertChange:
    """An episode transition applied by a cycle (see :mod:`fairlens_monitor.monitoring.episodes`).

    ``alert`` is the episode's row (new for ``open``); ``resolved_ids`` lists every alert of
    the kind a ``resolve`` closed (more than one only for alerts recorded before episodes).
    """

    action: episodes.Action
    alert: Alert
    resolved_ids: list[int]


@dataclass(frozen=True)
class SavedCycle:
    """Ids, alert changes and audit records of a committed cycle."""

    run_id: int
    reading_ids: list[int]
    alerts: list[AlertChange]
    events: list[AuditRecord]
    checkpoint: Checkpoint | None = None  # signed in the same transaction (see sealing)
    added: AuditRecord | None = None  # the monitor's ``monitor_added``, on its first run


Events = Callable[[Run, Sequence[Reading], Sequence[AlertChange]], EventList]
Seal = Callable[[Session, AuditRecord, Sequence[AlertChange]], "Checkpoint | None"]


class StaleCycleError(Exception):
    """A cycle was measured from a position another process has since moved past."""


@dataclass(frozen=True)
class CycleRows:
    """What one cycle writes: the rows (model instances, not yet stored) and the alert
    episode inputs. See ``Repository.save_cycle`` for each field."""

    run: Run
    readings: Sequence[Reading]
    groups: Sequence[Sequence[GroupResult]]
    candidates: Mapping[str, Alert]
    qualifies: dict[str, bool]
    files: Sequence[SourceFile] = ()
    judge: bool = True
    monitor: str = monitors.DEFAULT_MONITOR
    routes: outbox.Routes | None = None  # notify.on: the events' notifications (outbox)


def write_cycle(
    s: Session,
    rows: CycleRows,
    events: Events,
    *,
    close_after: int,
    actor: str,
    ts: str,
    expect: tuple[int, int] | None,
    seal: Seal | None,
) -> SavedCycle:
    """Write a cycle inside the caller's open session transaction (``save_cycle``'s body).

    Every row is written as the monitor's (``rows.monitor``) and every event names it (the
    monitor's own row is made sure of before, in a transaction of its own:
    :func:`ensure_monitor`).

    Returns:
        The ids assigned, the alert transitions and the audit records appended.

    Raises:
        StaleCycleError: ``expect`` no longer holds (nothing written yet).
    """
    serialise(s)
    conn = s.connection()
    monitor = rows.monitor
    if expect is not None and position(conn, monitor) != expect:
        raise StaleCycleError("another cycle was committed while this one measured")
    run, readings = rows.run, rows.readings
    run.monitor = monitor
    insert_rows(conn, RUNS, [run])
    for reading in readings:
        reading.run_id, reading.monitor = run.id, monitor
    insert_rows(conn, READINGS, readings)
    rollups = rollup.upsert(conn, readings, monitor)
    groups = [
        g
        for reading, group in zip(readings, rows.groups, strict=True)
        for g in _with(group, reading_id=reading.id, monitor=monitor)
    ]
    insert_rows(conn, GROUPS, groups)
    reading_id = readings[-1].id if readings else None
    insert_rows(conn, FILES, _with(rows.files, reading_id=reading_id, monitor=monitor))
    found = conn.execute(OPEN_ALERTS, {"monitor": monitor}).all() if readings and rows.judge else []
    changes = [
        change
        for kind in episodes.KINDS
        if readings
        and rows.judge
        and (
            change := _transition(
                conn,
                [Alert(**r._mapping) for r in found if r.kind == kind],
                kind,
                rows.qualifies.get(kind, False),
                rows.candidates,
                run,
                readings[-1],
                close_after,
            )
        )
        is not None
    ]
    inserted = {
        "runs": (RUNS, [run]),
        "readings": (READINGS, readings),
        "group_results": (GROUPS, groups),
        "source_files": (FILES, rows.files),
    }
    changed = {  # rows updated in place: read back as stored
        "alerts": [i for c in changes for i in (c.resolved_ids or [c.alert.id])],
        "reading_rollups": rollups,
    }
    pairs = attach(events(run, readings, changes), inserted_digests(s, inserted, changed))
    records = append_all(
        s, [(kind, actor, {**payload, "monitor": monitor}) for kind, payload in pairs], ts
    )
    outbox.enqueue(s, records, rows.routes, at=run.finished_at)  # same transaction
    sealed = seal(s, records[-1], changes) if seal is not None and records else None
    return SavedCycle(run.id, [r.id for r in readings], changes, records, sealed)


def ensure_monitor(
    s: Session, row: monitors.MonitorRow, *, actor: str, ts: str
) -> AuditRecord | None:
    """Insert the monitor's row with a ``monitor_added`` event unless it exists (inside the
    caller's serialised transaction, so two first runs cannot both insert it).

    ``Repository`` runs it in a transaction of its own before a monitor's first cycle, so a
    sealer attached to the repository signs ``monitor_added`` at once, as every event that
    is not a cycle's routine record (``ops.sealing``).

    Idempotent: a row already written (by the governance of ``run``/``once``, or an earlier
    run) is left as it is, and nothing is appended.

    Args:
        s: the write transaction's session (after :func:`serialise`).
        row: the row to insert when none exists under ``row.name``.
        actor: who ran the cycle.
        ts: RFC 3339 time of the event.

    Returns:
        The ``monitor_added`` record, or None when the row existed.
    """
    if monitors.exists(s, row.name):
        return None
    ids = monitors.upsert(s, [row])
    payload = {
        "monitor": row.name,
        "reason": "first run",
        "rows": [monitors.listing(row)],
        "row_digests": row_digests(s, {"monitors": ids}),
    }
    return append(s, MONITOR_ADDED, actor, payload, ts)


def position(conn: Connection | Session, monitor: str) -> tuple[int, int]:
    """``(next cycle index, newest ok run id)`` of ``monitor``: its newest ``ok`` run's
    index + 1 and id.

    One step down ``ix_runs_monitor_status_id`` from the monitor's end, whatever the
    history's length or the other monitors' (a count of the ``ok`` runs walked the whole
    index every cycle, and went back when retention deleted old runs, handing out an index
    a second time).
    """
    row = conn.execute(POSITION, {"monitor": monitor}).first()
    return (0, 0) if row is None else (int(row[0]) + 1, int(row[1]))


def drift_history(
    conn: Connection, attribute: str, baseline_readings: int, monitor: str
) -> tuple[list[tuple[int, int, int, int]], float]:
    """What the drift chart needs about ``monitor``'s earlier monitored readings (see
    ``Repository.drift_history``); the first rows and the newest one, in id order."""
    params = {"attribute": attribute, "baseline": baseline_readings, "monitor": monitor}
    rows = conn.execute(DRIFT_BASELINE, params).all()
    previous = conn.execute(DRIFT_PREVIOUS, params).scalar()
    return [tuple(r) for r in rows], float(previous or 0.0)


def serialise(s: Session) -> None:
    """Make this write transaction the only one appending to the chain (PostgreSQL).

    SQLite already serialises writers with ``BEGIN IMMEDIATE``. On PostgreSQL two
    transactions could read the same chain head; the advisory lock, released at commit or
    rollback, queues them instead.
    """
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CHAIN_LOCK_KEY})


def append(
    s: Session, event_type: str, actor: str, payload: dict[str, Any], ts: str
) -> AuditRecord:
    """Append one event to the chain inside the caller's (serialised) transaction."""
    return append_all(s, [(event_type, actor, payload)], ts)[0]


def append_all(
    s: Session, events: Sequence[tuple[str, str, dict[str, Any]]], ts: str
) -> list[AuditRecord]:
    """Append events in order: one read of the chain head, one ``INSERT``.

    The session is flushed first, so ORM writes the caller made are stored before the
    events that describe them.
    """
    s.flush()
    conn = s.connection()
    head = conn.execute(HEAD).first()
    seq, prev = (int(head[0]), str(head[1])) if head else (0, GENESIS_HASH)
    records, rows = [], []
    for event_type, actor, payload in events:
        seq += 1
        rec = build_record(
            seq=seq, ts=ts, event_type=event_type, actor=actor, payload=payload, prev_hash=prev
        )
        rows.append(
            {
                "seq": rec.seq,
                "ts": rec.ts,
                "event_type": rec.event_type,
                "actor": rec.actor,
                "canonical": rec.canonical,
                "prev_hash": rec.prev_hash,
                "hash": rec.hash,
            }
        )
        records.append(rec)
        prev = rec.hash
    insert_values(conn, EVENTS, rows)
    s.info.setdefault(APPENDED, []).extend(records)  # for a sealer (sealing.Sealer.attach)
    return records


APPENDED = "fairlens_appended"  # Session.info key: the audit records this transaction appended


def _with(objs: Sequence[Any], **values: Any) -> Sequence[Any]:
    for obj in objs:
        for key, value in values.items():
            setattr(obj, key, value)
    return objs


def insert_rows(conn: Connection, table: Table, objs: Sequence[Base]) -> None:
    """INSERT the model instances' set columns (as the unit of work would); fill in ids.

    Columns never set are left out, so the database's default (NULL, or a server default)
    applies exactly as with ``Session.add``. Each row is one prepared statement on the
    DB-API cursor (:mod:`~fairlens_monitor.store.prepared`).
    """
    if not objs:
        return
    keys = _columns(table)
    params = [{k: v for k, v in vars(obj).items() if k in keys} for obj in objs]
    for obj, new_id in zip(objs, insert_values(conn, table, params), strict=True):
        obj.id = new_id  # type: ignore[attr-defined]


_COLUMNS: dict[str, frozenset[str]] = {}


def _columns(table: Table) -> frozenset[str]:
    """The table's column names a write may set (all but the generated id)."""
    if table.name not in _COLUMNS:
        _COLUMNS[table.name] = frozenset(c.key for c in table.columns if c.key != "id")
    return _COLUMNS[table.name]


def _transition(
    conn: Connection,
    open_rows: list[Alert],
    kind: str,
    qualifies: bool,
    candidates: Mapping[str, Alert],
    run: Run,
    reading: Reading,
    close_after: int,
) -> AlertChange | None:
    """Apply one kind's episode transition inside the cycle's transaction.

    ``open_rows`` are the kind's open or acknowledged alerts, newest first."""
    current = open_rows[0] if open_rows else None
    step = episodes.step(
        kind, None if current is None else current.clean_streak, qualifies, close_after
    )
    if step is None:
        return None
    if step.action == "open":
        candidate = candidates.get(kind)  # looked up (built, encrypted) only when opening
        if candidate is None:
            raise ValueError(f"a {kind} episode opens but no alert was prepared")
        candidate.run_id, candidate.reading_id = run.id, reading.id
        candidate.monitor = run.monitor
        candidate.last_reading_id = reading.id
        insert_rows(conn, ALERTS, [candidate])
        return AlertChange("open", candidate, [])
    if current is None:  # episodes.step only continues an episode that exists
        raise ValueError(f"no open {kind} episode to {step.action}")
    changed: dict[str, Any] = {"clean_streak": step.clean_streak}
    if step.action == "continue":
        changed["last_reading_id"] = reading.id
    if step.action == "resolve":
        changed.update(state="resolved", closed_at=run.finished_at)
    _update(conn, current, changed)
    if step.action != "resolve":
        return AlertChange(step.action, current, [])
    for row in open_rows[1:]:
        _update(conn, row, {"state": "resolved", "closed_at": run.finished_at})
    return AlertChange("resolve", current, sorted(row.id for row in open_rows))


def _update(conn: Connection, alert: Alert, values: dict[str, Any]) -> None:
    """UPDATE the alert's row and the carrier alike."""
    conn.execute(UPDATE_ALERT, {"alert_id": alert.id, **values})
    for key, value in values.items():
        setattr(alert, key, value)
