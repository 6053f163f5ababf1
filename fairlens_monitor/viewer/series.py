"""The page's time series: one monitor's DIR, gap and group rates over a date range.

Beside :mod:`viewer.data` (the headline reads): every query here is scoped to one monitor
and one ``[since, until)`` range, downsampled in SQL (time buckets with min/mean/max) so a
year of one-minute readings comes back as a few thousand points. Wide ranges read the hourly
rollup (``reading_rollups``) instead of the readings, so their cost does not grow with the
number of readings. :func:`mark_gaps` cuts a series where readings stop (an outage, missed
cycles), so the charts draw a gap there instead of a straight segment across it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from fairlens_monitor.fairness.stats import ratio_interval
from fairlens_monitor.store.rollup import DEFAULT_MONITOR, bucket_of

MAX_POINTS = 2000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # before every stored time: "all"
FAR = datetime(9999, 1, 1, tzinfo=UTC)  # after every stored time: "until now"
GAP_FACTOR = 3.0  # a pause longer than this many expected steps is drawn as a gap

HISTORY_COLUMNS = [
    "time",
    "scenario",
    "readings",
    "dir_min",
    "dir_mean",
    "dir_max",
    "gap_mean",
    "alerts",
    "drift_max",
    "group_rate",
    "reference_rate",
    "ci_low",
    "ci_high",
]


def history(
    engine: Engine,
    *,
    since: datetime | None,
    until: datetime | None = None,
    max_points: int = MAX_POINTS,
    rollup: bool = False,
    monitor: str = DEFAULT_MONITOR,
) -> pd.DataFrame:
    """Return one monitor's DIR and gap over time per scenario, downsampled in SQL.

    Args:
        engine: a read-only engine.
        since: only readings at or after this time (None: all).
        until: only readings before this time (None: up to the newest).
        max_points: the most time buckets per scenario.
        rollup: read the hourly rollup (``reading_rollups``) instead of the readings — for
            wide ranges: ~``max_points`` whole hours per scenario are read however many
            readings they hold; the range then starts at the beginning of the hour ``since``
            falls in and ends with the hour ``until`` falls in.
        monitor: whose readings.

    Returns:
        One row per (bucket, scenario): ``time`` (first reading in the bucket, UTC),
        ``scenario``, ``readings``, ``dir_min``, ``dir_mean``, ``dir_max``, ``gap_mean``,
        ``alerts`` (adverse readings), ``drift_max``, ``group_rate``, ``reference_rate``, and
        ``ci_low``/``ci_high``: the 95% interval
        (:func:`~fairlens_monitor.fairness.stats.ratio_interval`) of the bucket's pooled
        counts (no upper end where the reference group had no approvals).
    """
    with engine.connect() as conn:
        if rollup:
            df = _rollup_history(conn, since, until, max_points, monitor)
        else:
            params = _buckets(conn, since, until, max_points, monitor)
            df = (
                None
                if params is None
                else pd.read_sql_query(text(_READINGS_HISTORY), conn, params=params)
            )
    if df is None:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    df = df.drop(columns="bucket")
    df["time"] = pd.to_datetime(df["time"], utc=True, format="ISO8601")
    df["group_rate"] = df["ua"] / df["un"].where(df["un"] > 0)
    df["reference_rate"] = df["pa"] / df["pn"].where(df["pn"] > 0)
    low, high = ratio_interval(df["ua"], df["un"], df["pa"], df["pn"])
    df["ci_low"], df["ci_high"] = low, np.where(np.isinf(high), np.nan, high)  # no ∞ to draw
    return df.drop(columns=["ua", "un", "pa", "pn"])


_READINGS_HISTORY = (
    "SELECT (id - :low) / :width AS bucket, scenario, min(measured_at) AS time, "
    "count(*) AS readings, min(dir) AS dir_min, "
    "avg(dir) AS dir_mean, max(dir) AS dir_max, avg(gap) AS gap_mean, "
    "sum(CASE WHEN verdict = 'adverse' OR (verdict IS NULL AND dir_alert) "
    "THEN 1 ELSE 0 END) AS alerts, max(drift_statistic) AS drift_max, "
    "sum(group_approved) AS ua, "
    "sum(group_applicants) AS un, sum(reference_approved) AS pa, "
    "sum(reference_applicants) AS pn FROM readings WHERE monitor = :monitor "
    "AND id >= :low AND id <= :high "
    "GROUP BY bucket, scenario ORDER BY bucket"
)
_ROLLUP_HISTORY = (
    "SELECT (bucket - :low) / :width AS slot, scenario, min(first_at) AS time, "
    "sum(readings) AS readings, min(dir_min) AS dir_min, sum(dir_sum) AS dir_sum, "
    "sum(dir_n) AS dir_n, max(dir_max) AS dir_max, sum(gap_sum) AS gap_sum, "
    "sum(gap_n) AS gap_n, sum(alerts) AS alerts, max(drift_max) AS drift_max, "
    "sum(group_approved) AS ua, sum(group_applicants) AS un, "
    "sum(reference_approved) AS pa, sum(reference_applicants) AS pn "
    "FROM reading_rollups WHERE monitor = :monitor AND bucket >= :low AND bucket <= :high "
    "GROUP BY slot, scenario ORDER BY slot, scenario"
)


def _rollup_history(
    conn: Connection,
    since: datetime | None,
    until: datetime | None,
    max_points: int,
    monitor: str,
) -> pd.DataFrame | None:
    """``history`` from the rollup: whole hours from the one ``since`` falls in, combined
    ``width`` at a time; the means from the combined sums. None when no hour is stored."""
    first = 0 if since is None else bucket_of(since)
    last = bucket_of(FAR if until is None else until)
    low, high = conn.execute(
        text(
            "SELECT min(bucket), max(bucket) FROM reading_rollups "
            "WHERE monitor = :monitor AND bucket >= :first AND bucket <= :last"
        ),
        {"monitor": monitor, "first": first, "last": last},
    ).one()  # answered from the (monitor, bucket, scenario) index
    if low is None:
        return None
    width = max(1, -(-(int(high) - int(low) + 1) // max_points))
    df = pd.read_sql_query(
        text(_ROLLUP_HISTORY),
        conn,
        params={"monitor": monitor, "low": low, "high": high, "width": width},
    ).rename(columns={"slot": "bucket"})
    df["dir_mean"] = df["dir_sum"] / df["dir_n"].where(df["dir_n"] > 0)
    df["gap_mean"] = df["gap_sum"] / df["gap_n"].where(df["gap_n"] > 0)
    order = ["bucket", "scenario", "time", "readings", "dir_min", "dir_mean", "dir_max"]
    rest = ["gap_mean", "alerts", "drift_max", "ua", "un", "pa", "pn"]
    return df[order + rest]


def group_history(
    engine: Engine,
    *,
    since: datetime | None,
    until: datetime | None = None,
    max_points: int = MAX_POINTS,
    monitor: str = DEFAULT_MONITOR,
) -> pd.DataFrame:
    """Return each group's approval rate over time (monitored scenario), downsampled in SQL.

    Args:
        engine: a read-only engine.
        since: from this time (None: all).
        until: before this time (None: up to the newest).
        max_points: the most time buckets.
        monitor: whose readings.

    Returns:
        One row per (bucket, group): ``time``, ``group``, ``rate`` (pooled over the bucket),
        ``role``, ``approved``, ``applicants``; empty when the readings have no per-group
        rows (recorded before 0.2).
    """
    columns = ["time", "group", "rate", "role", "approved", "applicants"]
    with engine.connect() as conn:
        params = _buckets(conn, since, until, max_points, monitor)
        if params is None:
            return pd.DataFrame(columns=columns)
        df = pd.read_sql_query(
            text(
                "SELECT (g.id - :low) / :width AS bucket, x.label AS grp, min(x.role) AS role, "
                "min(g.measured_at) AS time, sum(x.approved) AS approved, "
                "sum(x.applicants) AS applicants FROM readings g "
                "JOIN group_results x ON x.reading_id = g.id "
                "WHERE g.monitor = :monitor AND g.id >= :low AND g.id <= :high "
                "AND g.scenario = 'monitored' GROUP BY bucket, x.label ORDER BY bucket"
            ),
            conn,
            params=params,
        )
    df["time"] = pd.to_datetime(df["time"], utc=True, format="ISO8601")
    df["rate"] = df["approved"] / df["applicants"].where(df["applicants"] > 0)
    return df.rename(columns={"grp": "group"})[columns]


def mark_gaps(
    df: pd.DataFrame, *, by: str, expected: timedelta | None, factor: float = GAP_FACTOR
) -> pd.DataFrame:
    """Number the unbroken runs of a series, so a chart draws each run as its own line.

    A run breaks where two consecutive points of the same ``by`` value are further apart than
    ``factor`` expected steps: the larger of the monitor's interval (``expected``) and the
    series' own median step (a downsampled series steps by its bucket width).

    Args:
        df: a series with a ``time`` column.
        by: the column whose values are separate lines (``scenario``, ``group``).
        expected: the monitor's interval between runs (None: unknown).
        factor: how many steps make a gap.

    Returns:
        ``df`` with a ``segment`` column (``"<by value>#<n>"``), sorted by ``by`` and time.
    """
    if df.empty:
        return df.assign(segment=pd.Series(dtype=str))
    df = df.sort_values([by, "time"]).reset_index(drop=True)
    step = df.groupby(by)["time"].diff()
    median = step.median()
    floor = pd.Timedelta(0) if pd.isna(median) else median
    if expected is not None:
        floor = max(floor, pd.Timedelta(expected))
    if floor > pd.Timedelta(0):
        broke = (step > floor * factor).fillna(False)
    else:  # one point per line, or all at one instant: nothing to break
        broke = pd.Series(False, index=df.index)
    run = broke.astype(int).groupby(df[by]).cumsum()
    return df.assign(segment=df[by].astype(str) + "#" + run.astype(str))


def _buckets(
    conn: Connection,
    since: datetime | None,
    until: datetime | None,
    max_points: int,
    monitor: str,
) -> dict[str, Any] | None:
    """Query parameters that cut one monitor's readings in ``[since, until)`` into
    ~``max_points`` buckets of consecutive ids (readings are appended in time order, so they
    are time buckets; integer arithmetic on the key is far cheaper than parsing dates).
    None when there is no reading in the range."""
    params: dict[str, Any] = {
        "since": db_time(conn, since),
        "until": db_time(conn, FAR if until is None else until),
        "monitor": monitor,
    }
    low, high = conn.execute(
        text(
            "SELECT min(id), max(id) FROM readings WHERE monitor = :monitor "
            "AND measured_at >= :since AND measured_at < :until"
        ),
        params,
    ).one()
    if low is None:
        return None
    params.update(low=low, high=high, width=max(1, -(-(high - low + 1) // max_points)))
    return params


def db_time(conn: Connection, moment: datetime | None) -> str | datetime:
    """A bound value comparable with stored times (``None``: before every reading).

    SQLite keeps times as UTC text ``YYYY-MM-DD HH:MM:SS.ffffff``, so it gets that text;
    PostgreSQL gets the aware datetime itself (a text literal there would be read in the
    session's time zone).
    """
    moment = EPOCH if moment is None else moment.astimezone(UTC)
    if conn.dialect.name == "sqlite":
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment


def group_totals(
    engine: Engine,
    *,
    since: datetime | None,
    until: datetime | None,
    monitor: str = DEFAULT_MONITOR,
) -> pd.DataFrame:
    """Each group's pooled counts over ``[since, until)`` (monitored readings of ``monitor``).

    Returns:
        ``group`` (the stored label, ``A & B`` for an intersection), ``approved``,
        ``applicants``, ``readings``; empty when no reading with per-group rows is in range.
    """
    with engine.connect() as conn:
        params = {
            "since": db_time(conn, since),
            "until": db_time(conn, FAR if until is None else until),
            "monitor": monitor,
        }
        return pd.read_sql_query(
            text(
                "SELECT x.label AS grp, sum(x.approved) AS approved, "
                "sum(x.applicants) AS applicants, count(*) AS readings FROM readings g "
                "JOIN group_results x ON x.reading_id = g.id WHERE g.monitor = :monitor "
                "AND g.scenario = 'monitored' AND g.measured_at >= :since "
                "AND g.measured_at < :until GROUP BY x.label ORDER BY x.label"
            ),
            conn,
            params=params,
        ).rename(columns={"grp": "group"})
