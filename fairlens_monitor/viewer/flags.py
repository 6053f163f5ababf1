"""Which readings the page shows fail their digest check: marked where they are drawn.

Beside the page's own row check (:mod:`viewer.rows`) and the background ``verify``
(:mod:`viewer.watch`). Two sources, joined:

- on every refresh the page checks the newest :data:`CHECK_LIMIT` readings of the shown
  range against their digests on the chain (``LiveLedger``: ~24 µs a row, 24 ms for 1,000 —
  docs/PERFORMANCE.md) — an edit is marked at the next refresh, before the next ``verify``;
- older readings of a wide range, and the per-group rows (``group_results``) behind the
  drill-down, are marked from the anomalies of the newest background ``verify`` (a full walk
  follows any anomaly, and one runs at least daily).

The readings found are read back as stored now (their value *as tampered*), so a chart can
draw a distinct marker at that value and a table can list them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, bindparam, text

from fairlens_monitor.viewer.series import FAR, db_time

CHECK_LIMIT = 1000  # readings of the shown range the page checks itself on every refresh
COLUMNS = ["reading_id", "scenario", "time", "dir", "gap", "drift_statistic", "reason"]
UNCHECKED = "cannot check"  # the reason page.py's check gives when it could not run
Marks = Callable[[str, list[int]], dict[int, tuple[bool, str]]]


def failing_phrase(count: int) -> str:
    """ "1 reading fails its digest check" / "3 readings fail their digest check"."""
    if count == 1:
        return "1 reading fails its digest check"
    return f"{count:,} readings fail their digest check"


def ids_text(ids: list[int], most: int = 10) -> str:
    """ "#12, #40" — at most ``most`` ids, then "…"."""
    return ", ".join(f"#{i}" for i in ids[:most]) + (" …" if len(ids) > most else "")


def newest_ids(
    engine: Engine,
    *,
    monitor: str,
    since: datetime | None,
    until: datetime | None,
    limit: int = CHECK_LIMIT,
) -> list[int]:
    """The ids of ``monitor``'s newest ``limit`` readings in ``[since, until)``, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id FROM readings WHERE monitor = :monitor AND measured_at >= :since "
                "AND measured_at < :until ORDER BY id DESC LIMIT :limit"
            ),
            {
                "monitor": monitor,
                "since": db_time(conn, since),
                "until": db_time(conn, FAR if until is None else until),
                "limit": limit,
            },
        ).all()
    return [int(i) for (i,) in rows]


def failed_ids(
    checked: Mapping[int, tuple[bool, str]], known: Mapping[int, str] | None = None
) -> dict[int, str]:
    """The failing ids with their reason: the page's own check first, then the background
    ``verify``'s (``known``) for the ids it did not check itself. A row the page could not
    check (``cannot check: …``, the database unreadable for a moment) is not a failure: the
    headline says so, and the charts do not fill with crosses.

    Args:
        checked: per id, ``(verified, reason)`` from the page's check.
        known: per id, the background ``verify``'s anomaly (``kind: detail``).
    """
    out = {i: why for i, (ok, why) in checked.items() if not ok and not why.startswith(UNCHECKED)}
    for i, why in (known or {}).items():
        if i not in checked:
            out[int(i)] = why
    return out


def failing_readings(
    engine: Engine,
    *,
    monitor: str,
    since: datetime | None,
    until: datetime | None,
    readings: Mapping[int, str],
    group_results: Mapping[int, str] | None = None,
) -> pd.DataFrame:
    """The failing readings of ``monitor`` in ``[since, until)``, as stored now.

    Args:
        engine: a read-only engine.
        monitor: whose readings.
        since: the range's start (None: all).
        until: its end, exclusive (None: now).
        readings: failing reading ids and why.
        group_results: failing per-group rows and why; their readings are listed too.

    Returns:
        :data:`COLUMNS`, one row per reading (oldest first); ``time`` in UTC. A reading whose
        row is gone (``row_missing``) cannot be drawn and is not listed here.
    """
    reasons = dict(readings)
    extra = dict(group_results or {})
    if not reasons and not extra:
        return pd.DataFrame(columns=COLUMNS)
    with engine.connect() as conn:
        if extra:
            owners = conn.execute(
                text("SELECT id, reading_id FROM group_results WHERE id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"ids": sorted(extra)},
            ).all()
            for row_id, reading_id in owners:
                why = f"group row {int(row_id)}: {extra[int(row_id)]}"
                reasons.setdefault(int(reading_id), why)
        frame = pd.read_sql_query(
            text(
                "SELECT id AS reading_id, scenario, measured_at AS time, dir, gap, "
                "drift_statistic FROM readings WHERE monitor = :monitor AND id IN :ids "
                "AND measured_at >= :since AND measured_at < :until ORDER BY id"
            ).bindparams(bindparam("ids", expanding=True)),
            conn,
            params={
                "monitor": monitor,
                "ids": sorted(reasons),
                "since": db_time(conn, since),
                "until": db_time(conn, FAR if until is None else until),
            },
        )
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
    frame["reason"] = [reasons[int(i)] for i in frame["reading_id"]]
    return frame[COLUMNS]
