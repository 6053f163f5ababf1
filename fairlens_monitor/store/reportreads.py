"""The reads of an examiner's pack (``report``): one monitor's rows of one period.

Every function takes a ``Connection`` the caller holds inside one read transaction (a
snapshot: SQLite's deferred ``BEGIN``, PostgreSQL's ``REPEATABLE READ``), so the chain the
report verified, the rows it lists and the CSV files it writes are one state of the
database. Every query is scoped to the monitor and the period ``[start, end)`` (UTC; the
start inclusive, the end exclusive) and served by the per-monitor indexes; the readings and
group results stream (``yield_per``), so a pack of a year of readings never holds them all.
Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, literal, or_, select

from fairlens_monitor.store.chainstore import payload_of
from fairlens_monitor.store.models import (
    DEFAULT_MONITOR,
    Alert,
    AuditEvent,
    GroupResult,
    Monitor,
    Reading,
    Run,
)

# The columns of readings.csv, in order: counts, rates, the ratio and its interval, the test,
# the thresholds and the verdict of each reading (never its lineage: paths and queries of
# the lender's systems are not the examiner's business and may name hosts).
READING_COLUMNS: tuple[str, ...] = (
    "id",
    "run_id",
    "scenario",
    "measured_at",
    "source",
    "protected_attribute",
    "group_label",
    "reference_label",
    "group_applicants",
    "group_approved",
    "reference_applicants",
    "reference_approved",
    "group_rate",
    "reference_rate",
    "dir",
    "dir_ci_low",
    "dir_ci_high",
    "gap",
    "p_value",
    "p_adjusted",
    "test",
    "shortfall",
    "verdict",
    "verdict_reason",
    "dir_threshold",
    "gap_threshold",
    "alpha",
    "confidence",
    "min_group_size",
    "min_group_share",
    "reference_mode",
    "groups_compared",
    "groups_excluded",
    "dir_alert",
    "gap_alert",
    "drift_statistic",
    "drift_alert",
    "risk_level",
    "window_start",
    "window_end",
    "config_hash",
    "code_version",
)
GROUP_COLUMNS: tuple[str, ...] = (
    "reading_id",
    "label",
    "role",
    "applicants",
    "approved",
    "rate",
    "share",
    "impact_ratio",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "test",
    "shortfall",
    "verdict",
)


def _in_period(monitor: str, start: datetime, end: datetime) -> Any:
    return (
        (Reading.monitor == monitor) & (Reading.measured_at >= start) & (Reading.measured_at < end)
    )


def monitor_exists(conn: Connection, monitor: str) -> bool:
    """Whether the database knows ``monitor``: a row in ``monitors`` or a run of it."""
    listed = conn.scalar(select(literal(1)).where(Monitor.name == monitor).limit(1))
    ran = conn.scalar(select(literal(1)).where(Run.monitor == monitor).limit(1))
    return bool(listed or ran)


def monitor_names(conn: Connection) -> list[str]:
    """Every monitor the database knows (listed or with runs), sorted."""
    names = set(conn.scalars(select(Monitor.name))) | set(
        conn.scalars(select(Run.monitor).distinct())
    )
    return sorted(str(n) for n in names)


def period_readings(
    conn: Connection, monitor: str, start: datetime, end: datetime
) -> Iterator[Any]:
    """Stream the monitor's readings measured in the period, in id (time) order.

    Yields:
        Rows with :data:`READING_COLUMNS` as attributes.
    """
    cols = [getattr(Reading, c) for c in READING_COLUMNS]
    query = select(*cols).where(_in_period(monitor, start, end)).order_by(Reading.id)
    yield from conn.execution_options(yield_per=2000).execute(query)


def group_rows(conn: Connection, monitor: str, start: datetime, end: datetime) -> Iterator[Any]:
    """Stream the group results of the monitor's readings in the period, with each
    reading's scenario and time first.

    Yields:
        Rows with ``scenario``, ``measured_at`` and :data:`GROUP_COLUMNS` as attributes.
    """
    cols = [getattr(GroupResult, c) for c in GROUP_COLUMNS]
    query = (
        select(Reading.scenario, Reading.measured_at, *cols)
        .join(Reading, Reading.id == GroupResult.reading_id)
        .where(_in_period(monitor, start, end))
        .order_by(GroupResult.reading_id, GroupResult.id)
    )
    yield from conn.execution_options(yield_per=5000).execute(query)


def group_summary(conn: Connection, monitor: str, start: datetime, end: datetime) -> list[Any]:
    """Per scenario, group and role over the period: readings, pooled counts, the range of
    the impact ratio and how many readings judged the group adverse.

    Returns:
        Rows ``(scenario, label, role, readings, applicants, approved, ir_min, ir_max,
        adverse)``, by scenario, role and label.
    """
    query = (
        select(
            Reading.scenario,
            GroupResult.label,
            GroupResult.role,
            func.count(),
            func.sum(GroupResult.applicants),
            func.sum(GroupResult.approved),
            func.min(GroupResult.impact_ratio),
            func.max(GroupResult.impact_ratio),
            func.sum(case((GroupResult.verdict == "adverse", 1), else_=0)),
        )
        .join(Reading, Reading.id == GroupResult.reading_id)
        .where(_in_period(monitor, start, end))
        .group_by(Reading.scenario, GroupResult.label, GroupResult.role)
        .order_by(Reading.scenario, GroupResult.role, GroupResult.label)
    )
    return list(conn.execute(query))


def period_series(
    conn: Connection, monitor: str, start: datetime, end: datetime
) -> list[tuple[Any, ...]]:
    """The points the charts draw: ``(scenario, measured_at, dir, ci_low, ci_high, gap,
    verdict)`` of every reading in the period, in time order (five small values a reading)."""
    query = (
        select(
            Reading.scenario,
            Reading.measured_at,
            Reading.dir,
            Reading.dir_ci_low,
            Reading.dir_ci_high,
            Reading.gap,
            Reading.verdict,
        )
        .where(_in_period(monitor, start, end))
        .order_by(Reading.id)
    )
    return [tuple(r) for r in conn.execution_options(yield_per=5000).execute(query)]


# What the methodology paragraph names: the thresholds and tests each reading recorded.
JUDGED_BY = (
    "dir_threshold",
    "gap_threshold",
    "alpha",
    "confidence",
    "min_group_size",
    "min_group_share",
    "reference_mode",
    "test",
    "protected_attribute",
)


def judged_by(
    conn: Connection, monitor: str, start: datetime, end: datetime
) -> dict[str, list[Any]]:
    """The distinct thresholds, tests and attributes the period's readings were judged with
    (as stored on each reading: a change during the period shows as two values).

    Returns:
        Per column of :data:`JUDGED_BY`, its distinct non-NULL values, sorted.
    """
    cols = [getattr(Reading, c) for c in JUDGED_BY]
    seen: dict[str, set[Any]] = {c: set() for c in JUDGED_BY}
    for row in conn.execute(select(*cols).distinct().where(_in_period(monitor, start, end))):
        for name, value in zip(JUDGED_BY, row, strict=True):
            if value is not None:
                seen[name].add(value)
    return {name: sorted(values, key=str) for name, values in seen.items()}


def runs_summary(conn: Connection, monitor: str, start: datetime, end: datetime) -> dict[str, int]:
    """How many of the monitor's runs started in the period, per status (``ok``, ``failed``)."""
    rows = conn.execute(
        select(Run.status, func.count())
        .where(Run.monitor == monitor, Run.started_at >= start, Run.started_at < end)
        .group_by(Run.status)
    )
    return {str(status): int(n) for status, n in rows}


def period_alerts(conn: Connection, monitor: str, start: datetime, end: datetime) -> list[Any]:
    """The monitor's alert episodes open at any moment of the period: raised before its end
    and not resolved before its start (an episode raised earlier and still open counts).

    Returns:
        Alert rows (``id, kind, state, created_at, closed_at, verdict, dir, key_id, token,
        reading_id, last_reading_id``), oldest first.
    """
    query = (
        select(
            Alert.id,
            Alert.kind,
            Alert.state,
            Alert.created_at,
            Alert.closed_at,
            Alert.verdict,
            Alert.dir,
            Alert.key_id,
            Alert.token,
            Alert.reading_id,
            Alert.last_reading_id,
        )
        .where(
            Alert.monitor == monitor,
            Alert.created_at < end,
            or_(Alert.closed_at.is_(None), Alert.closed_at >= start),
        )
        .order_by(Alert.created_at, Alert.id)
    )
    return list(conn.execute(query))


def monitor_events(
    conn: Connection, monitor: str, event_types: Sequence[str], up_to_seq: int
) -> list[tuple[int, str, str, str, str, dict[str, Any]]]:
    """The audit events of these types that concern ``monitor``, up to ``up_to_seq``.

    An event concerns a monitor when its payload names it (``"monitor"``); one naming none
    (written before revision 0015) is the ``default`` monitor's. The payload is read from
    the hashed bytes, its only stored copy; a damaged row is left out (verification, which
    ran first, would have refused it).

    Returns:
        ``(seq, ts, event_type, actor, hash, payload)`` in seq order.
    """
    query = select(
        AuditEvent.seq,
        AuditEvent.ts,
        AuditEvent.event_type,
        AuditEvent.actor,
        AuditEvent.hash,
        AuditEvent.canonical,
    ).where(AuditEvent.event_type.in_(tuple(event_types)), AuditEvent.seq <= up_to_seq)
    if monitor != DEFAULT_MONITOR:  # a prefilter only: the payload is checked below
        query = query.where(AuditEvent.canonical.contains(f'"monitor":"{monitor}"'))
    out = []
    for seq, ts, kind, actor, digest, text_ in conn.execute(query.order_by(AuditEvent.seq)):
        payload = payload_of(text_)
        if payload is None or payload.get("monitor", DEFAULT_MONITOR) != monitor:
            continue
        out.append((int(seq), str(ts), str(kind), str(actor), str(digest), payload))
    return out
