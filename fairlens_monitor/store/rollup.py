"""The hourly rollup of readings (``reading_rollups``), kept up to date by every cycle.

simulate → measure → detect → alert → **log**. ``cyclewrite.write_cycle`` calls
:func:`upsert` once, right after it inserted the cycle's readings, inside the cycle's
transaction: each reading is folded into the row of its (monitor, hour, scenario) — one
indexed ``SELECT`` for the cycle's hours, one ``UPDATE`` (executemany) of the rows already
there, an ``INSERT`` per new one (once an hour per scenario). The ids returned go into the
cycle event's row digests, so the newest event naming a rollup row records it as it is after
the update (as for alerts).

:func:`fold` is the definition: the same sums, counts, minima and maxima that migration 0014
computes in SQL over the stored readings (``GROUP BY scenario, bucket``), so a rollup row is
always the aggregate of its readings (up to float rounding of the sums). NULL values are
skipped as SQL's aggregates skip them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, update

from fairlens_monitor.store.models import Reading, ReadingRollup

ROLLUPS: Table = ReadingRollup.__table__  # type: ignore[assignment]
BUCKET_SECONDS = 3600  # one hour: a year is 8,760 buckets per scenario
DEFAULT_MONITOR = "default"  # the one monitor of this version's store

# A range, not IN (...): an expanding IN is compiled again on every call. A cycle's readings
# share their hour, so the range is one bucket.
_SELECT = select(ROLLUPS).where(
    ROLLUPS.c.monitor == bindparam("monitor"),
    ROLLUPS.c.bucket >= bindparam("low"),
    ROLLUPS.c.bucket <= bindparam("high"),
)
_UPDATE = update(ROLLUPS).where(ROLLUPS.c.id == bindparam("row_id"))
_INSERT = insert(ROLLUPS).returning(ROLLUPS.c.id)

_COUNTS = ("group_approved", "group_applicants", "reference_approved", "reference_applicants")
_ZERO: dict[str, Any] = {
    "readings": 0,
    "dir_n": 0,
    "dir_sum": 0.0,
    "gap_n": 0,
    "gap_sum": 0.0,
    "group_approved": 0,
    "group_applicants": 0,
    "reference_approved": 0,
    "reference_applicants": 0,
    "verdict_ok": 0,
    "verdict_adverse": 0,
    "verdict_inconclusive": 0,
    "verdict_no_data": 0,
    "alerts": 0,
    "dir_alerts": 0,
    "gap_alerts": 0,
    "drift_alerts": 0,
}


def bucket_of(moment: datetime) -> int:
    """The hour since 1970-01-01 UTC that ``moment`` (timezone-aware) falls in."""
    return math.floor(moment.timestamp() / BUCKET_SECONDS)


def _number(value: Any) -> float | None:
    """A float value as SQL aggregates see it: None for NULL and NaN (SQLite stores NaN as
    NULL)."""
    if value is None:
        return None
    number = float(value)
    return None if number != number else number


def _low(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _high(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


def fold(row: Mapping[str, Any] | None, reading: Reading, monitor: str) -> dict[str, Any]:
    """A rollup row with one more reading folded in (pure).

    Args:
        row: the bucket's row so far (column → value), or None for a new bucket.
        reading: the stored reading (its ``id`` assigned).
        monitor: the monitor the reading belongs to.

    Returns:
        Every column's new value except ``id``.
    """
    at = reading.measured_at
    out: dict[str, Any] = (
        {k: v for k, v in row.items() if k != "id"}
        if row is not None
        else {
            **_ZERO,
            "monitor": monitor,
            "scenario": reading.scenario,
            "bucket": bucket_of(at),
            "first_at": at,
            "last_at": at,
            "first_reading_id": reading.id,
            "last_reading_id": reading.id,
            "dir_min": None,
            "dir_max": None,
            "gap_min": None,
            "gap_max": None,
            "drift_max": None,
        }
    )
    out["first_at"], out["last_at"] = min(out["first_at"], at), max(out["last_at"], at)
    out["first_reading_id"] = min(out["first_reading_id"], reading.id)
    out["last_reading_id"] = max(out["last_reading_id"], reading.id)
    out["readings"] += 1
    for name in ("dir", "gap"):
        value = _number(getattr(reading, name))
        if value is not None:
            out[f"{name}_n"] += 1
            out[f"{name}_sum"] = float(out[f"{name}_sum"]) + value
            out[f"{name}_min"] = _low(out[f"{name}_min"], value)
            out[f"{name}_max"] = _high(out[f"{name}_max"], value)
    out["drift_max"] = _high(out["drift_max"], _number(reading.drift_statistic))
    for name in _COUNTS:
        out[name] += int(getattr(reading, name) or 0)
    verdict = reading.verdict
    if verdict in ("ok", "adverse", "inconclusive", "no_data"):
        out[f"verdict_{verdict}"] += 1
    out["alerts"] += int(verdict == "adverse" or (verdict is None and bool(reading.dir_alert)))
    out["dir_alerts"] += int(bool(reading.dir_alert))
    out["gap_alerts"] += int(bool(reading.gap_alert))
    out["drift_alerts"] += int(bool(reading.drift_alert))
    return out


def upsert(
    conn: Connection, readings: Sequence[Reading], monitor: str = DEFAULT_MONITOR
) -> list[int]:
    """Fold a cycle's stored readings into their rollup rows (inside the cycle's transaction).

    Args:
        conn: the cycle transaction's connection.
        readings: the readings just inserted (ids assigned).
        monitor: the monitor they belong to.

    Returns:
        The ids of the rollup rows written (for the cycle event's row digests).
    """
    if not readings:
        return []
    keys = [(bucket_of(r.measured_at), r.scenario) for r in readings]
    params = {"monitor": monitor, "low": min(keys)[0], "high": max(keys)[0]}
    found = {
        (row["bucket"], row["scenario"]): dict(row)
        for row in conn.execute(_SELECT, params).mappings()
        if (row["bucket"], row["scenario"]) in keys
    }
    for key, reading in zip(keys, readings, strict=True):
        old = found.get(key)
        found[key] = {"id": None if old is None else old["id"], **fold(old, reading, monitor)}
    ids, updates = [], []
    for key in sorted(set(keys)):
        values = found[key]
        row_id = values.pop("id")
        if row_id is None:
            row_id = conn.execute(_INSERT, values).scalar_one()
        else:
            updates.append({"row_id": row_id, **values})
        ids.append(int(row_id))
    if updates:
        conn.execute(_UPDATE, updates)  # one executemany for the rows already there
    return ids
