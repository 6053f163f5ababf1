"""The portfolio at a glance: one row per monitor, worst first (the page's landing view).

Reads ``v_monitor_status`` (revision 0015: state, newest monitored reading's verdict and DIR,
open alert episodes, newest successful run) with each monitor's expected interval, and a
trend sparkline per monitor from the hourly rollup (``reading_rollups``): one indexed query
for all monitors, so its cost is that of the sparkline's hours, not of the history.
A monitor is *stale* when its newest successful run is older than three intervals (or it
never had one): a dead daemon must not leave the page green.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, bindparam, text

from fairlens_monitor.store.rollup import bucket_of

STALE_FACTOR = 3.0  # a monitor is stale after this many intervals without a successful run
SPARK_HOURS = 24 * 7  # the sparkline's span
SPARK_POINTS = 28  # its points (6-hour steps)
RANK = {"adverse": 0, "stale": 1, "inconclusive": 2, "drifting": 2, "warning": 2, "ok": 4}


@dataclass(frozen=True)
class MonitorStatus:
    """One inventory row."""

    name: str
    state: str  # active / paused / retired
    verdict: str | None  # the newest monitored reading's verdict (None: no reading yet)
    dir: float | None
    open_alerts: int
    last_reading_at: datetime | None
    last_ok_run_at: datetime | None
    interval_seconds: float | None
    stale: bool
    trend: tuple[float, ...]  # the sparkline: 6-hour DIR means with readings, oldest first
    reading_id: int | None = None  # the newest monitored reading (whose DIR is shown)

    @property
    def rank(self) -> tuple[int, int, float]:
        """Sort key, worst first: adverse, stale, amber states, ok; inactive ones last; then
        more open alerts, then lower DIR."""
        if self.state != "active":
            level = 8
        elif self.verdict == "adverse":
            level = RANK["adverse"]
        elif self.stale:
            level = RANK["stale"]
        else:
            level = RANK.get(str(self.verdict), 6)
        return (level, -self.open_alerts, 99.0 if self.dir is None else float(self.dir))


def is_stale(state: str, last_ok: datetime | None, interval: float | None, now: datetime) -> bool:
    """Whether an active monitor's newest successful run is older than three intervals.

    Args:
        state: ``active``, ``paused`` or ``retired`` (only an active monitor is stale).
        last_ok: when its newest successful run finished (None: never).
        interval: its expected seconds between runs (None or ≤ 0: unknown, never stale).
        now: the time to judge at (UTC).
    """
    if state != "active" or interval is None or interval <= 0:
        return False
    return last_ok is None or (now - last_ok).total_seconds() > STALE_FACTOR * interval


def inventory(engine: Engine, now: datetime) -> list[MonitorStatus]:
    """Every monitor's status, worst first.

    Args:
        engine: a read-only engine.
        now: the time staleness is judged at, and the sparkline ends at (UTC).

    Returns:
        One :class:`MonitorStatus` per row of ``monitors``, sorted by :attr:`MonitorStatus.rank`.
    """
    with engine.connect() as conn:
        rows = (
            conn.execute(
                text(
                    "SELECT s.monitor, s.state, s.verdict, s.dir, s.open_alerts, "
                    "s.last_reading_at, s.last_ok_run_at, m.interval_seconds "
                    "FROM v_monitor_status s JOIN monitors m ON m.name = s.monitor"
                )
            )
            .mappings()
            .all()
        )
        trends = _trends(conn, [str(r["monitor"]) for r in rows], now)
        # the reading v_monitor_status shows, by the same (monitor, id) index walk
        newest: dict[str, Any] = {
            str(name): reading
            for name, reading in conn.execute(
                text(
                    "SELECT m.name, (SELECT g.id FROM readings g WHERE g.monitor = m.name "
                    "AND g.scenario = 'monitored' ORDER BY g.id DESC LIMIT 1) FROM monitors m"
                )
            )
        }
    out = []
    for r in rows:
        last_ok = _time(r["last_ok_run_at"])
        interval = None if r["interval_seconds"] is None else float(r["interval_seconds"])
        name = str(r["monitor"])
        out.append(
            MonitorStatus(
                name=name,
                state=str(r["state"]),
                verdict=None if r["verdict"] is None else str(r["verdict"]),
                dir=None if r["dir"] is None else float(r["dir"]),
                open_alerts=int(r["open_alerts"] or 0),
                last_reading_at=_time(r["last_reading_at"]),
                last_ok_run_at=last_ok,
                interval_seconds=interval,
                stale=is_stale(str(r["state"]), last_ok, interval, now),
                trend=trends.get(name, ()),
                reading_id=None if newest.get(name) is None else int(newest[name]),
            )
        )
    return sorted(out, key=lambda m: (m.rank, m.name))


def _trends(conn: Any, names: list[str], now: datetime) -> dict[str, tuple[float, ...]]:
    """Each monitor's DIR means over the last week in ``SPARK_POINTS`` steps (monitored)."""
    if not names:
        return {}
    last = bucket_of(now)
    first = last - SPARK_HOURS + 1
    step = SPARK_HOURS // SPARK_POINTS
    query = text(
        "SELECT monitor, (bucket - :first) / :step AS slot, sum(dir_sum) AS s, "
        "sum(dir_n) AS n FROM reading_rollups WHERE monitor IN :names "
        "AND bucket >= :first AND bucket <= :last AND scenario = 'monitored' "
        "GROUP BY monitor, slot"
    ).bindparams(bindparam("names", expanding=True))
    frame = pd.DataFrame(
        conn.execute(query, {"names": names, "first": first, "last": last, "step": step}).all(),
        columns=["monitor", "slot", "s", "n"],
    )
    out: dict[str, tuple[float, ...]] = {}
    for name, part in frame.groupby("monitor"):
        series = [float("nan")] * SPARK_POINTS
        for slot, s, n in zip(part["slot"], part["s"], part["n"], strict=True):
            if n and 0 <= int(slot) < SPARK_POINTS:
                series[int(slot)] = float(s) / float(n)
        out[str(name)] = tuple(v for v in series if v == v)  # the hours with readings
    return out


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    moment: datetime = stamp.to_pydatetime()
    return moment
