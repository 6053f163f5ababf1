"""Change tracking: every change of the monitoring rules goes on the audit record, per monitor.

Sits before the first cycle of a start (``run``) or a manual cycle (``once``). The config is
a portfolio of monitors (``config.monitors``); :func:`sync_portfolio` compares it with the
``monitors`` table and the chain and records, per monitor and naming it in the payload:

- ``monitor_added``: a monitor the table does not hold, or holds as retired (it returns), or
  holds without a config hash (registered by the migration for the history from before
  monitors existed). The event carries the monitor's settings snapshot.
- ``config_changed``: the settings that shape the monitor's readings
  (:meth:`Settings.shaping`) differ from its last snapshot on the chain; the event lists each
  changed key with its old and new value — so a threshold change is always on the record,
  with when and by which process.
- ``monitor_retired``: a monitor the table holds as active and the config no longer names.
  Its row and history stay, shown as retired; the config file is never edited.

Each event and the ``monitors`` row it describes are written in one transaction
(``Repository.put_monitors``). ``diff`` and :func:`schedule_of` are pure; the rest is the edge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fairlens_monitor.audit.chain import AuditRecord
from fairlens_monitor.audit.events import (
    CONFIG_CHANGED,
    DAEMON_STARTED,
    MONITOR_ADDED,
    MONITOR_RETIRED,
)
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.store.monitors import MonitorRow
from fairlens_monitor.store.repository import Repository

# The events that carry a monitor's settings snapshot (``settings`` and its config hash).
SNAPSHOT_EVENTS = (DAEMON_STARTED, CONFIG_CHANGED, MONITOR_ADDED)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested settings to ``{"thresholds.dir": 0.8, ...}``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """List the keys whose values differ, sorted, as ``{"key", "old", "new"}``.

    A key present on one side only has None on the other.
    """
    a, b = flatten(old), flatten(new)
    return [
        {"key": k, "old": a.get(k), "new": b.get(k)}
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def schedule_of(settings: Settings) -> tuple[str, float | None]:
    """How a monitor is scheduled, as the ``monitors`` table records it.

    Args:
        settings: the monitor's settings.

    Returns:
        ``(text, expected seconds between runs)``: ``("every 60s", 60.0)`` for an interval;
        ``("cron 0 6 * * *", None)`` for a cron schedule, whose gap varies (the daemon
        records the next run instead).
    """
    cron = getattr(settings.schedule, "cron", None)
    if isinstance(cron, str) and cron:
        return f"cron {cron}", None
    seconds = settings.schedule.interval_seconds
    return f"every {seconds:g}s", float(seconds)


def desired_row(name: str, settings: Settings, row: MonitorRow | None, at: datetime) -> MonitorRow:
    """The ``monitors`` row of a configured monitor: ``row`` (kept: created, paused) with the
    config's schedule and hash, not retired; a new row created ``at`` when there is none."""
    schedule, interval = schedule_of(settings)
    if row is None:
        return MonitorRow(
            name=name,
            created_at=at,
            retired_at=None,
            paused=False,
            paused_at=None,
            paused_by=None,
            schedule=schedule,
            interval_seconds=interval,
            config_hash=settings.config_hash(),
        )
    return dataclasses.replace(
        row,
        retired_at=None,
        schedule=schedule,
        interval_seconds=interval,
        config_hash=settings.config_hash(),
    )


def record_config_change(
    settings: Settings,
    repo: Repository,
    *,
    actor: str,
    ts: str,
    initial: bool = True,
    row: MonitorRow | None = None,
) -> AuditRecord | None:
    """Append ``config_changed`` for ``repo.monitor`` when its rules differ from its last
    recorded snapshot.

    Args:
        settings: the monitor's settings about to be used.
        repo: the monitor's repository (``Repository(engine, monitor=NAME)``).
        actor: ``daemon`` or ``cli``.
        ts: RFC 3339 time of the event.
        initial: also record the first snapshot of a monitor that has none yet (every key
            listed as new). The daemon passes False when its ``daemon_started`` event, which
            follows, carries the snapshot.
        row: the monitor's row in the ``monitors`` table; when given, it is updated with
            the new config hash and schedule in the event's transaction.

    Returns:
        The appended record, or None when nothing changed.
    """
    current = settings.shaping()
    previous, previous_hash = repo.last_settings_snapshot(SNAPSHOT_EVENTS)
    if previous == current or (previous is None and previous_hash is None and not initial):
        return None
    if previous is None and previous_hash == settings.config_hash():
        return None
    payload = {
        "monitor": repo.monitor,
        "old_config_hash": previous_hash,
        "new_config_hash": settings.config_hash(),
        "changes": diff(previous or {}, current),
        "settings": current,
    }
    if row is None:
        return repo.append_event(CONFIG_CHANGED, actor, payload, ts=ts)
    at = datetime.fromisoformat(ts)
    updated = desired_row(repo.monitor, settings, row, at)
    return repo.put_monitors(
        [updated], event_type=CONFIG_CHANGED, payload=payload, actor=actor, ts=ts
    )


def sync_portfolio(
    portfolio: Mapping[str, Settings], repo: Repository, *, actor: str, ts: str
) -> list[AuditRecord]:
    """Bring the ``monitors`` table and the chain in line with the config's monitors.

    Args:
        portfolio: ``{name: settings}`` from ``config.monitors.load_portfolio``.
        repo: a writable repository on the service's database (any monitor's).
        actor: ``daemon`` or ``cli``.
        ts: RFC 3339 time of the events (also the rows' created/retired time).

    Returns:
        The events appended, in order: for each configured monitor its ``monitor_added`` or
        ``config_changed`` (or nothing when unchanged), then a ``monitor_retired`` for each
        active monitor the config no longer names. Each names its monitor in ``monitor``.
    """
    at = datetime.fromisoformat(ts)
    rows = {row.name: row for row in repo.monitor_rows()}
    records: list[AuditRecord] = []
    for name, settings in portfolio.items():
        row = rows.get(name)
        scoped = repo.for_monitor(name)
        if row is not None and row.retired_at is None and row.config_hash is not None:
            changed = record_config_change(settings, scoped, actor=actor, ts=ts, row=row)
            if changed is not None:
                records.append(changed)
            continue
        # New, returning from retirement, or known only from the migration: a change of its
        # rules since its last snapshot comes first, so the key-by-key record is kept.
        if row is not None:
            changed = record_config_change(settings, scoped, actor=actor, ts=ts, initial=False)
            if changed is not None:
                records.append(changed)
        schedule, interval = schedule_of(settings)
        payload: dict[str, Any] = {
            "monitor": name,
            "schedule": schedule,
            "interval_seconds": interval,
            "config_hash": settings.config_hash(),
            "settings": settings.shaping(),
        }
        if row is not None:
            payload["returned"] = row.retired_at is not None  # else: history from before 0015
        records.append(
            repo.put_monitors(
                [desired_row(name, settings, row, at)],
                event_type=MONITOR_ADDED,
                payload=payload,
                actor=actor,
                ts=ts,
            )
        )
    for name, row in rows.items():
        if name in portfolio or row.retired_at is not None:
            continue
        records.append(
            repo.put_monitors(
                [dataclasses.replace(row, retired_at=at)],
                event_type=MONITOR_RETIRED,
                payload={"monitor": name, "config_hash": row.config_hash},
                actor=actor,
                ts=ts,
            )
        )
    return records
