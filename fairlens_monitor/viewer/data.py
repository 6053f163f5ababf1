"""What the trend page reads: the headline, the alerts and the daemon's health of one monitor.

Sits beside the **log** step, after it: it opens the database read-only (SQLite ``mode=ro``,
or ``immutable=1`` for a read-only copy in a read-only folder; it never creates, migrates or
writes) and turns every way the database can be unusable into one clear sentence. Every
query is scoped to one monitor (revision 0015); the time series are in :mod:`viewer.series`
and the portfolio's inventory in :mod:`viewer.inventory`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text

from fairlens_monitor.config.settings import Settings
from fairlens_monitor.fairness.stats import ratio_ci
from fairlens_monitor.ops.app import open_repository
from fairlens_monitor.store.db import sqlite_path
from fairlens_monitor.store.rollup import DEFAULT_MONITOR
from fairlens_monitor.viewer.series import db_time, group_history, history

__all__ = [  # history and group_history live in viewer.series; named here for old callers
    "Health",
    "Latest",
    "alert_token",
    "alerts",
    "group_count",
    "group_history",
    "health",
    "history",
    "latest",
    "open_readonly",
    "read_only_copy",
]

RANGES: dict[str, timedelta | None] = {
    "last hour": timedelta(hours=1),
    "last day": timedelta(days=1),
    "last week": timedelta(weeks=1),
    "all": None,
}
WIDE = frozenset({"last week", "all"})  # ranges read from the hourly rollup
ROLLUP_FROM = timedelta(days=3)  # a custom range this long or longer reads the rollup too


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


def read_only_copy(settings: Settings) -> bool:
    """Whether the database is a SQLite file this process cannot write (or whose folder it
    cannot write): the page then reads it ``immutable=1`` and says it is a read-only copy."""
    path = sqlite_path(settings.database.url)
    if path is None or not path.exists():
        return False
    return not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))


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


def latest(engine: Engine, monitor: str = DEFAULT_MONITOR) -> Latest | None:
    """Return the newest monitored reading with decisions of ``monitor``, or None when there
    is none yet.

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
    return Latest(row, previous, interval, as_time(empty_since))


def as_time(value: Any) -> datetime | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    moment: datetime = stamp.to_pydatetime()
    return moment


OPEN_STATES = ("open", "acknowledged")


def alerts(
    engine: Engine,
    *,
    since: datetime | None,
    until: datetime | None = None,
    monitor: str = DEFAULT_MONITOR,
    limit: int = 500,
) -> pd.DataFrame:
    """Return one monitor's alert episodes: every open or acknowledged one, whatever the
    range, and the others raised in ``[since, until)``; open ones first, then newest first.

    Args:
        engine: a read-only engine.
        since: the range's start (None: all).
        until: the range's end, exclusive (None: now).
        monitor: whose alerts.
        limit: the most closed episodes returned.

    Returns:
        Columns ``alert_id``, ``created_at``, ``kind``, ``state``, ``verdict``, ``dir``,
        ``p_value``, the four counts, ``gap``, ``closed_at``, ``group_label``,
        ``reference_label``; never the token.
    """
    with engine.connect() as conn:
        params = {
            "limit": limit,
            "since": db_time(conn, since),
            "until": db_time(conn, datetime(9999, 1, 1, tzinfo=UTC) if until is None else until),
            "monitor": monitor,
        }
        columns = (
            "alert_id, created_at, kind, state, verdict, dir, p_value, group_approved, "
            "group_applicants, reference_approved, reference_applicants, gap, closed_at, "
            "group_label, reference_label"
        )
        df = pd.read_sql_query(
            text(
                f"SELECT {columns} FROM v_alerts WHERE monitor = :monitor "  # noqa: S608
                "AND state IN ('open', 'acknowledged') UNION ALL "
                f"SELECT * FROM (SELECT {columns} FROM v_alerts WHERE monitor = :monitor "
                "AND state NOT IN ('open', 'acknowledged') AND created_at >= :since "
                "AND created_at < :until ORDER BY alert_id DESC LIMIT :limit) AS closed"
            ),
            conn,
            params=params,
        )
    for column in ("created_at", "closed_at"):
        df[column] = pd.to_datetime(df[column], utc=True, format="ISO8601")
    df["_open"] = df["state"].isin(OPEN_STATES)
    df = df.sort_values(["_open", "alert_id"], ascending=False).drop(columns="_open")
    return df.reset_index(drop=True)


def alert_token(engine: Engine, alert_id: int, monitor: str = DEFAULT_MONITOR) -> str | None:
    """Return one alert's Fernet token (to decrypt only where the key is readable)."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT token FROM alerts WHERE id = :id AND monitor = :monitor"),
            {"id": alert_id, "monitor": monitor},
        ).scalar()


@dataclass(frozen=True)
class Health:
    """How the daemon is doing for one monitor, from what it wrote."""

    last_ok: datetime | None
    failed: int
    missed: int
    last_error: str | None
    interval: float | None = None  # expected seconds between runs (monitors.interval_seconds)

    def age(self, now: datetime) -> timedelta | None:
        """Time since the last successful cycle."""
        return None if self.last_ok is None else now - self.last_ok

    def stale(self, now: datetime, factor: float = 3.0) -> bool:
        """Whether the newest successful run is older than ``factor`` intervals (or there
        is none); False when the interval is unknown."""
        if self.interval is None or self.interval <= 0:
            return False
        age = self.age(now)
        return age is None or age.total_seconds() > factor * self.interval


def health(
    engine: Engine, monitor: str = DEFAULT_MONITOR, *, interval: float | None = None
) -> Health:
    """Return one monitor's last successful cycle, failed and missed counts, last error.

    Args:
        engine: a read-only engine.
        monitor: whose runs.
        interval: the configured interval, used when ``monitors.interval_seconds`` is NULL.
    """
    with engine.connect() as conn:
        scope = {"monitor": monitor}
        last_ok = conn.execute(
            text(
                "SELECT finished_at FROM runs WHERE monitor = :monitor AND status = 'ok' "
                "ORDER BY id DESC LIMIT 1"
            ),
            scope,
        ).scalar()
        failed, last_error = conn.execute(
            text(
                "SELECT count(*), (SELECT error FROM runs WHERE monitor = :monitor AND "
                "status = 'failed' ORDER BY id DESC LIMIT 1) FROM runs "
                "WHERE monitor = :monitor AND status = 'failed'"
            ),
            scope,
        ).one()
        missed = conn.execute(
            text(
                "SELECT count(*) FROM v_audit_trail WHERE event_type = 'cycle_missed' "
                "AND (monitor = :monitor OR (monitor IS NULL AND :monitor = 'default'))"
            ),
            scope,
        ).scalar()
        stored = conn.execute(
            text("SELECT interval_seconds FROM monitors WHERE name = :monitor"), scope
        ).scalar()
    every = float(stored) if stored is not None else interval
    return Health(as_time(last_ok), int(failed), int(missed or 0), last_error, every)


def group_count(reading: dict[str, Any]) -> int:
    """How many groups a stored reading has (2 for readings from before group counts)."""
    compared, excluded = reading.get("groups_compared"), reading.get("groups_excluded")
    if compared is None:
        return 2
    return int(compared) + int(excluded or 0) + 1
