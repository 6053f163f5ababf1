"""An alert episode's story and the charts' annotations, read from the audit trail.

Beside :mod:`viewer.data`: for one alert, the audit records behind each step of its
timeline (raised, acknowledged by whom with what note, resolved) with their hashes and the
signed checkpoint covering each (the first checkpoint at or after its seq), and the
readings that kept it open; for the charts, the monitor's config changes and the daemon's
restarts. Reads the auditor views (``v_audit_trail``, ``v_checkpoints``, ``v_alerts``) only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text

from fairlens_monitor.audit.events import (
    ALERT_ACKNOWLEDGED,
    ALERT_RAISED,
    ALERT_RESOLVED,
    CONFIG_CHANGED,
    DAEMON_STARTED,
    MONITOR_CHANGED,
    MONITOR_PAUSED,
    MONITOR_RESUMED,
)
from fairlens_monitor.store.rollup import DEFAULT_MONITOR

STEPS = (ALERT_RAISED, ALERT_ACKNOWLEDGED, ALERT_RESOLVED)
MARKED = {  # chart annotations: event type -> label
    CONFIG_CHANGED: "config changed",
    MONITOR_CHANGED: "monitor changed",
    MONITOR_PAUSED: "paused",
    MONITOR_RESUMED: "resumed",
    DAEMON_STARTED: "daemon (re)started",
}


@dataclass(frozen=True)
class Step:
    """One audited step of an alert episode."""

    seq: int
    ts: str
    event_type: str
    actor: str
    by: str | None
    note: str | None
    hash: str
    checkpoint_seq: int | None  # the signed checkpoint covering it (None: not yet)
    checkpoint_ts: str | None


def _payload(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        loaded = json.loads(value or "{}")
    except (TypeError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _monitor_of(payload: dict[str, Any]) -> str:
    name = payload.get("monitor")
    return name if isinstance(name, str) else DEFAULT_MONITOR


def timeline(engine: Engine, alert_id: int, monitor: str = DEFAULT_MONITOR) -> list[Step]:
    """The audited steps of one alert, oldest first, each with its covering checkpoint.

    Args:
        engine: a read-only engine.
        alert_id: the alert.
        monitor: its monitor (events of other monitors are ignored).
    """
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT seq, ts, event_type, actor, payload, hash FROM v_audit_trail "
                "WHERE event_type IN ('alert_raised', 'alert_acknowledged', 'alert_resolved') "
                "ORDER BY seq"
            )
        ).all()
        marks = conn.execute(text("SELECT seq, ts FROM v_checkpoints ORDER BY seq")).all()
    steps = []
    for seq, ts, kind, actor, raw, digest in rows:
        payload = _payload(raw)
        if _monitor_of(payload) != monitor:
            continue
        ids = payload.get("alert_ids") or [payload.get("alert_id")]
        if alert_id not in ids:
            continue
        cover = next(((s, t) for s, t in marks if int(s) >= int(seq)), (None, None))
        steps.append(
            Step(
                seq=int(seq),
                ts=str(ts),
                event_type=str(kind),
                actor=str(actor),
                by=None if payload.get("by") is None else str(payload["by"]),
                note=None if payload.get("note") is None else str(payload["note"]),
                hash=str(digest),
                checkpoint_seq=None if cover[0] is None else int(cover[0]),
                checkpoint_ts=None if cover[1] is None else str(cover[1]),
            )
        )
    return steps


def kept_open(engine: Engine, alert_id: int, monitor: str = DEFAULT_MONITOR) -> pd.DataFrame:
    """The monitored readings from the one that raised the alert to its last one.

    Returns:
        ``reading_id``, ``measured_at``, ``verdict``, ``dir``, ``p_value`` (at most 200,
        newest last); empty when the alert is unknown.
    """
    with engine.connect() as conn:
        span = conn.execute(
            text(
                "SELECT reading_id, coalesce(last_reading_id, reading_id) FROM v_alerts "
                "WHERE alert_id = :id AND monitor = :monitor"
            ),
            {"id": alert_id, "monitor": monitor},
        ).first()
        if span is None:
            return pd.DataFrame(columns=["reading_id", "measured_at", "verdict", "dir", "p_value"])
        return pd.read_sql_query(
            text(
                "SELECT reading_id, measured_at, verdict, dir, p_value FROM v_fairness_history "
                "WHERE monitor = :monitor AND scenario = 'monitored' AND reading_id >= :low "
                "AND reading_id <= :high ORDER BY reading_id LIMIT 200"
            ),
            conn,
            params={"monitor": monitor, "low": span[0], "high": span[1]},
        )


def chart_events(
    engine: Engine, *, since: datetime | None, until: datetime | None, monitor: str
) -> pd.DataFrame:
    """Config changes of ``monitor`` and daemon restarts in the range, for the charts.

    Returns:
        ``time`` (UTC) and ``label`` per event.
    """
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT ts, event_type, monitor FROM v_audit_trail WHERE event_type IN "
                "('config_changed', 'monitor_changed', 'monitor_paused', 'monitor_resumed', "
                "'daemon_started') ORDER BY seq"
            )
        ).all()  # audit times are RFC 3339 text: compared below as times
    times, labels = [], []
    for ts, kind, owner in rows:
        if kind != DAEMON_STARTED and (owner or DEFAULT_MONITOR) != monitor:
            continue
        moment = pd.Timestamp(str(ts)).tz_convert("UTC")
        if since is not None and moment < pd.Timestamp(since):
            continue
        if until is not None and moment >= pd.Timestamp(until):
            continue
        times.append(moment)
        labels.append(MARKED[str(kind)])
    return pd.DataFrame({"time": pd.to_datetime(times, utc=True), "label": labels})
