"""What the trend page reads: read-only queries over the monitor's database.

Sits beside the **log** step, after it: it opens the database read-only (SQLite ``mode=ro``;
it never creates, migrates or writes), turns every way the database can be unusable into one
clear sentence, and downsamples long histories in SQL (time buckets with min/mean/max) so a
year of one-minute readings comes back as a few thousand points. Wide ranges (a week, all)
read the hourly rollup (``reading_rollups``, revision 0014) instead of the readings, so
their cost does not grow with the number of readings. Every query is one monitor's
(``monitor=``, revision 0015): the page shows the monitor chosen in its selector
(:func:`monitor_names` lists them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from fairlens_monitor.config.settings import Settings
from fairlens_monitor.fairness.stats import ratio_ci, ratio_interval
from fairlens_monitor.ops.app import open_repository
from fairlens_monitor.store.monitors import DEFAULT_MONITOR
from fairlens_monitor.store.rollup import bucket_of

RANGES: dict[str, timedelta | None] = {
    "last hour": timedelta(hours=1),
    "last day": timedelta(days=1),
    "last week": timedelta(weeks=1),
    "all": None,
}
WIDE = frozenset({"last week", "all"})  # ranges read from the hourly rollup
MAX_POINTS = 2000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # before every stored time: "all"


def open_readonly(settings: Settings) -> Engine:
    """Open the configured database for reading only, or say why it cannot be shown.

    Args:
        settings: validated settings.

    Returns:
        A read-only engine on a database at the schema this version reads.

    Raises:
        StoreError: the database is missing, empty (no schema yet), locked, or at another
            schema revision. The message says what to do.
    """
    return open_repository(settings, readonly=True).engine


def monitor_names(engine: Engine) -> list[str]:
    """The monitors the database knows (the ``monitors`` table, by name); ``default`` when it
    lists none yet (no cycle has run)."""
    with engine.connect() as conn:
        names = [str(n) for (n,) in conn.execute(text("SELECT name FROM monitors ORDER BY name"))]
    return names or [DEFAULT_MONITOR]


@dataclass(frozen=True)
class Latest:
    """The newest monitored reading and the change since the one before."""

    reading: dict[str, Any]
    previous_dir: float | None
    interval: tuple[float | None, float | None]  # (None, None): undefined; high None: ∞
    empty_since: datetime | None = None  # newest windows held no decisions (no_data)

    @property
    def status(self) -> str:
        """The colour-coded state of the newest reading.

        ``adverse`` or ``inconclusive`` (the stored verdict), ``drifting`` (verdict ok but
        the drift chart signals), ``warning`` (only the gap is flagged) or ``ok``. Readings
        from before verdicts existed (verdict NULL) fall back to the DIR threshold flag.
        """
        r = self.reading
        verdict = r.get("verdict")
        if verdict is None:
            return "adverse" if r["dir_alert"] else "warning" if r["gap_alert"] else "ok"
        if verdict != "ok":
            return str(verdict)
        if r.get("drift_alert"):
            return "drifting"
        return "warning" if r["gap_alert"] else "ok"


def latest(engine: Engine, *, monitor: str = DEFAULT_MONITOR) -> Latest | None:
    """Return the monitor's newest monitored reading with decisions, or None when there is
    none yet.

    ``empty_since`` is set when newer readings are ``no_data`` (empty windows): the time of
    the first of them, so the page can say since when no decisions arrived.
    """
    with engine.connect() as conn:
        rows = (
            conn.execute(
                text(
                    "SELECT * FROM v_fairness_history WHERE monitor = :monitor "
                    "AND scenario = 'monitored' AND (verdict IS NULL OR verdict != 'no_data') "
                    "ORDER BY reading_id DESC LIMIT 2"
                ),
                {"monitor": monitor},
            )
            .mappings()
            .all()
        )
        newest_id = rows[0]["reading_id"] if rows else 0
        empty_since = conn.execute(
            text(
                "SELECT min(measured_at) FROM v_fairness_history WHERE monitor = :monitor "
                "AND scenario = 'monitored' AND verdict = 'no_data' AND reading_id > :newest"
            ),
            {"newest": newest_id, "monitor": monitor},
        ).scalar()
    if not rows:
        return None
    row = dict(rows[0])
    interval: tuple[float | None, float | None]
    if row.get("dir_ci_low") is not None:  # high is None when unbounded (no reference approvals)
        high = row.get("dir_ci_high")
        interval = (float(row["dir_ci_low"]), None if high is None else float(high))
    else:  # a reading from before intervals were stored, or with an empty group
        interval = ratio_ci(
            *(
                int(row[k] or 0)
                for k in (
                    "group_approved",
                    "group_applicants",
                    "reference_approved",
                    "reference_applicants",
                )
            )
        )
    previous = rows[1]["dir"] if len(rows) > 1 else None
    return Latest(row, previous, interval, _as_time(empty_since))


def _as_time(value: Any) -> datetime | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    moment: datetime = stamp.to_pydatetime()
    return moment


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
    max_points: int = MAX_POINTS,
    rollup: bool = False,
    monitor: str = DEFAULT_MONITOR,
) -> pd.DataFrame:
    """Return DIR and gap over time per scenario, downsampled in SQL to about ``max_points``.

    Args:
        engine: a read-only engine.
        monitor: whose readings.
        since: only readings at or after this time (None: all).
        max_points: the most time buckets per scenario.
        rollup: read the hourly rollup (``reading_rollups``) instead of the readings — for
            wide ranges (a week, all): ~``max_points`` whole hours per scenario are read
            however many readings they hold; the range then starts at the beginning of the
            hour ``since`` falls in. The values are those of the same readings aggregated
            directly (sums and counts combine exactly; means up to float rounding).

    Returns:
        One row per (bucket, scenario): ``time`` (first reading in the bucket, UTC), ``scenario``,
        ``readings``, ``dir_min``, ``dir_mean``, ``dir_max``, ``gap_mean``, ``alerts``
        (adverse readings; before verdicts existed, readings below the threshold),
        ``drift_max`` (largest drift statistic),
        ``group_rate``, ``reference_rate`` (the headline and reference groups), and
        ``ci_low``/``ci_high``: the 95% interval
        (:func:`~fairlens_monitor.fairness.stats.ratio_interval`) of the bucket's pooled counts
        (one reading's own interval when a bucket holds one reading; no upper end
        where the reference group had no approvals).
    """
    with engine.connect() as conn:
        if rollup:
            df = _rollup_history(conn, since, max_points, monitor)
        else:
            params = _buckets(conn, since, max_points, monitor)
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
    "sum(reference_applicants) AS pn FROM readings WHERE monitor = :monitor AND id >= :low "
    "GROUP BY bucket, scenario ORDER BY bucket"
)
_ROLLUP_HISTORY = (
    "SELECT (bucket - :low) / :width AS slot, scenario, min(first_at) AS time, "
    "sum(readings) AS readings, min(dir_min) AS dir_min, sum(dir_sum) AS dir_sum, "
    "sum(dir_n) AS dir_n, max(dir_max) AS dir_max, sum(gap_sum) AS gap_sum, "
    "sum(gap_n) AS gap_n, sum(alerts) AS alerts, max(drift_max) AS drift_max, "
    "sum(group_approved) AS ua, sum(group_applicants) AS un, "
    "sum(reference_approved) AS pa, sum(reference_applicants) AS pn "
    "FROM reading_rollups WHERE monitor = :monitor AND bucket >= :low "
    "GROUP BY slot, scenario ORDER BY slot, scenario"
)


def _rollup_history(
    conn: Connection, since: datetime | None, max_points: int, monitor: str = DEFAULT_MONITOR
) -> pd.DataFrame | None:
    """``history`` from the rollup: whole hours from the one ``since`` falls in, combined
    ``width`` at a time; the means from the combined sums. None when no hour is stored."""
    first = 0 if since is None else bucket_of(since)
    low, high = conn.execute(
        text(
            "SELECT min(bucket), max(bucket) FROM reading_rollups "
            "WHERE monitor = :monitor AND bucket >= :first"
        ),
        {"monitor": monitor, "first": first},
    ).one()  # answered from the (monitor, bucket, scenario) index
    if low is None:
        return None
    width = max(1, -(-(int(high) - int(low) + 1) // max_points))
    df = pd.read_sql_query(
        text(_ROLLUP_HISTORY), conn, params={"monitor": monitor, "low": low, "width": width}
    ).rename(columns={"slot": "bucket"})
    df["dir_mean"] = df["dir_sum"] / df["dir_n"].where(df["dir_n"] > 0)
    df["gap_mean"] = df["gap_sum"] / df["gap_n"].where(df["gap_n"] > 0)
    order = ["bucket", "scenario", "time", "readings", "dir_min", "dir_mean", "dir_max"]
    rest = ["gap_mean", "alerts", "drift_max", "ua", "un", "pa", "pn"]
    return df[order + rest]


def group_count(reading: dict[str, Any]) -> int:
    """How many groups a stored reading has (2 for readings from before group counts)."""
    compared, excluded = reading.get("groups_compared"), reading.get("groups_excluded")
    if compared is None:
        return 2
    return int(compared) + int(excluded or 0) + 1


def group_history(
    engine: Engine,
    *,
    since: datetime | None,
    max_points: int = MAX_POINTS,
    monitor: str = DEFAULT_MONITOR,
) -> pd.DataFrame:
    """Return each group's approval rate over time (monitored scenario), downsampled in SQL.

    Returns:
        One row per (bucket, group): ``time``, ``group``, ``rate`` (pooled over the bucket),
        ``role``; empty when the readings have no per-group rows (recorded before 0.2).
    """
    with engine.connect() as conn:
        params = _buckets(conn, since, max_points, monitor)
        if params is None:
            return pd.DataFrame(columns=["time", "group", "rate", "role"])
        df = pd.read_sql_query(
            text(
                "SELECT (g.id - :low) / :width AS bucket, x.label AS grp, min(x.role) AS role, "
                "min(g.measured_at) AS time, sum(x.approved) AS approved, "
                "sum(x.applicants) AS applicants FROM readings g "
                "JOIN group_results x ON x.reading_id = g.id "
                "WHERE g.monitor = :monitor AND g.id >= :low AND g.scenario = 'monitored' "
                "GROUP BY bucket, x.label ORDER BY bucket"
            ),
            conn,
            params=params,
        )
    df["time"] = pd.to_datetime(df["time"], utc=True, format="ISO8601")
    df["rate"] = df["approved"] / df["applicants"].where(df["applicants"] > 0)
    return df.rename(columns={"grp": "group"})[["time", "group", "rate", "role"]]


def alerts(
    engine: Engine, *, since: datetime | None, limit: int = 500, monitor: str = DEFAULT_MONITOR
) -> pd.DataFrame:
    """Return the monitor's newest alert episodes (time, kind, state, verdict, DIR, counts),
    newest first; never the token."""
    with engine.connect() as conn:
        params = {"limit": limit, "since": _db_time(conn, since), "monitor": monitor}
        return pd.read_sql_query(
            text(
                "SELECT alert_id, created_at, kind, state, verdict, dir, p_value, "
                "group_approved, group_applicants, reference_approved, "
                "reference_applicants, gap, closed_at "
                "FROM v_alerts WHERE monitor = :monitor AND created_at >= :since "
                "ORDER BY alert_id DESC LIMIT :limit"
            ),
            conn,
            params=params,
        )


def alert_token(engine: Engine, alert_id: int) -> str | None:
    """Return one alert's Fernet token (to decrypt only where the key is readable)."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT token FROM alerts WHERE id = :id"), {"id": alert_id}
        ).scalar()


@dataclass(frozen=True)
class Health:
    """How the daemon is doing, from what it wrote."""

    last_ok: datetime | None
    failed: int
    missed: int
    last_error: str | None

    def age(self, now: datetime) -> timedelta | None:
        """Time since the last successful cycle."""
        return None if self.last_ok is None else now - self.last_ok


def health(engine: Engine, *, monitor: str = DEFAULT_MONITOR) -> Health:
    """Return the monitor's last successful cycle, failed and missed counts and last error
    (a ``cycle_missed`` event naming no monitor, from before revision 0015, is ``default``'s)."""
    mine = {"monitor": monitor}
    with engine.connect() as conn:
        last_ok = conn.execute(
            text(
                "SELECT finished_at FROM runs WHERE monitor = :monitor AND status = 'ok' "
                "ORDER BY id DESC LIMIT 1"
            ),
            mine,
        ).scalar()
        failed, last_error = conn.execute(
            text(
                "SELECT count(*), (SELECT error FROM runs WHERE monitor = :monitor "
                "AND status = 'failed' ORDER BY id DESC LIMIT 1) FROM runs "
                "WHERE monitor = :monitor AND status = 'failed'"
            ),
            mine,
        ).one()
        missed = conn.execute(
            text(
                "SELECT count(*) FROM v_audit_trail WHERE event_type = 'cycle_missed' "
                "AND coalesce(monitor, 'default') = :monitor"
            ),
            mine,
        ).scalar()
    when = None
    if last_ok is not None:
        when = pd.Timestamp(last_ok).to_pydatetime().replace(tzinfo=UTC)
    return Health(when, int(failed), int(missed or 0), last_error)


def _buckets(
    conn: Connection, since: datetime | None, max_points: int, monitor: str
) -> dict[str, Any] | None:
    """Query parameters that cut the monitor's readings since ``since`` into ~``max_points``
    buckets.

    Readings are appended in time order, so buckets of consecutive ids are time buckets;
    integer arithmetic on the key is far cheaper than parsing a million dates. None when
    there is no reading in the range.
    """
    params: dict[str, Any] = {"since": _db_time(conn, since), "monitor": monitor}
    # the first reading of any monitor in range (the measured_at index), then the monitor's
    # own from there (the (monitor, id) index): two index lookups, however long the history
    low, high = conn.execute(
        text(
            "SELECT min(id), max(id) FROM readings WHERE monitor = :monitor AND id >= "
            "(SELECT min(id) FROM readings WHERE measured_at >= :since)"
        ),
        params,
    ).one()
    if low is None:
        return None
    params.update(low=low, width=max(1, -(-(high - low + 1) // max_points)))
    return params


def _db_time(conn: Connection, moment: datetime | None) -> str | datetime:
    """A bound value comparable with stored times (``None``: before every reading).

    SQLite keeps times as UTC text ``YYYY-MM-DD HH:MM:SS.ffffff``, so it gets that text;
    PostgreSQL gets the aware datetime itself (a text literal there would be read in the
    session's time zone).
    """
    moment = EPOCH if moment is None else moment.astimezone(UTC)
    if conn.dialect.name == "sqlite":
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment
