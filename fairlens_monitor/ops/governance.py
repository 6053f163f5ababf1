"""Change tracking: every change of the monitoring rules goes on the audit record, per monitor.

Sits before the first cycle of a start (``run``) or a manual cycle (``once``). The config is
a portfolio of monitors (``config.monitors``); :func:`sync_portfolio` compares it with the
``monitors`` table and the chain and records, per monitor and naming it in the payload:

- ``monitor_added``: a monitor the table does not hold, or holds as retired (it returns,
  ``returned: true``, with the keys changed since its last snapshot). The event carries the
  monitor's settings snapshot.
- ``monitor_changed``: the settings that shape the monitor's readings
  (:meth:`Settings.shaping`) differ from its last snapshot on the chain; ``changes`` lists
  each changed key with its old and new value — so a threshold change is always on the
  record, with when and by which process. Also written, with no changes, when only the row
  is out of date (the bare ``default`` row revision 0015 inserts, without a schedule).
- ``monitor_retired``: a monitor the table holds as active and the config no longer names.
  Its row and history stay, shown as retired; the config file is never edited.

Each event and the ``monitors`` row it describes are written in one transaction
(``Repository.put_monitors``). Before revision 0015 a change was a ``config_changed`` event;
its snapshots still count (``SNAPSHOT_EVENTS``), and one is still written for a monitor the
table does not hold yet. ``diff``, :func:`schedule_of` and :func:`desired_row` are pure; the
rest is the edge.
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
    MONITOR_CHANGED,
    MONITOR_RETIRED,
)
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.store.monitors import MonitorRow, describe_schedule, row_for
from fairlens_monitor.store.repository import Repository

# The events that carry a monitor's settings snapshot (``settings`` and its config hash).
SNAPSHOT_EVENTS = (DAEMON_STARTED, CONFIG_CHANGED, MONITOR_ADDED, MONITOR_CHANGED)


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
        ``("cron 0 6 * * *", None)`` for a cron schedule (``store.monitors.describe_schedule``).
    """
    return describe_schedule(settings)


def desired_row(name: str, settings: Settings, row: MonitorRow | None, at: datetime) -> MonitorRow:
    """The ``monitors`` row of a configured monitor: ``row`` (created, paused and retired
    kept) with the config's schedule and hash; a new row created ``at`` when there is none."""
    if row is None:
        return row_for(name, settings, at)
    schedule, interval = schedule_of(settings)
    return dataclasses.replace(
        row, schedule=schedule, interval_seconds=interval, config_hash=settings.config_hash()
    )


def _listed(row: MonitorRow) -> tuple[str | None, float | None, str | None]:
    return row.schedule, row.interval_seconds, row.config_hash


def record_config_change(
    settings: Settings,
    repo: Repository,
    *,
    actor: str,
    ts: str,
    initial: bool = True,
    row: MonitorRow | None = None,
) -> AuditRecord | None:
    """Record that ``repo.monitor``'s rules differ from its last snapshot on the chain.

    Args:
        settings: the monitor's settings about to be used.
        repo: the monitor's repository (``Repository(engine, monitor=NAME)``).
        actor: ``daemon`` or ``cli``.
        ts: RFC 3339 time of the event.
        initial: also record the first snapshot of a monitor that has none yet (every key
            listed as new). The daemon passes False when its ``daemon_started`` event, which
            follows, carries the snapshot.
        row: the monitor's row in the ``monitors`` table, when the caller has read it (None:
            read here).

    Returns:
        The appended record — ``monitor_changed`` with the monitor's row brought up to date
        in the same transaction (also when only the row was out of date), or
        ``config_changed`` naming the monitor when the table holds no row for it yet — or
        None when nothing changed, or another process recorded it first (the row changed
        since it was read).
    """
    if row is None:
        row = next((r for r in repo.monitor_rows() if r.name == repo.monitor), None)
    current = settings.shaping()
    previous, previous_hash = repo.last_settings_snapshot(SNAPSHOT_EVENTS)
    changed = previous != current and not (
        previous is None and previous_hash == settings.config_hash()
    )
    if previous is None and previous_hash is None and not initial:
        changed = False
    at = datetime.fromisoformat(ts)
    updated = desired_row(repo.monitor, settings, row, at)
    if not changed and (row is None or _listed(row) == _listed(updated)):
        return None
    payload: dict[str, Any] = {
        "monitor": repo.monitor,
        "old_config_hash": previous_hash,
        "new_config_hash": settings.config_hash(),
        "changes": diff(previous or {}, current) if changed else [],
        "settings": current,
    }
    if row is None:
        return repo.append_event(CONFIG_CHANGED, actor, payload, ts=ts, scoped=True)
    schedule, interval = schedule_of(settings)
    payload.update(schedule=schedule, interval_seconds=interval)
    return repo.put_monitors_if(
        [updated], expect=[row], event_type=MONITOR_CHANGED, payload=payload, actor=actor, ts=ts
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
        ``monitor_changed`` (or nothing when unchanged), then a ``monitor_retired`` for each
        active monitor the config no longer names. Each names its monitor in ``monitor``.
        A change another process recorded between this read and the write is not
        recorded twice (``Repository.put_monitors_if``).
    """
    at = datetime.fromisoformat(ts)
    rows = {row.name: row for row in repo.monitor_rows()}
    records: list[AuditRecord] = []
    for name, settings in portfolio.items():
        row = rows.get(name)
        scoped = repo.for_monitor(name)
        if row is not None and row.retired_at is None:
            changed = record_config_change(settings, scoped, actor=actor, ts=ts, row=row)
            if changed is not None:
                records.append(changed)
            continue
        schedule, interval = schedule_of(settings)
        payload: dict[str, Any] = {
            "monitor": name,
            "schedule": schedule,
            "interval_seconds": interval,
            "config_hash": settings.config_hash(),
            "settings": settings.shaping(),
        }
        if row is not None:  # back from retirement: what changed while it was away
            previous, _ = scoped.last_settings_snapshot(SNAPSHOT_EVENTS)
            payload.update(returned=True, changes=diff(previous or {}, settings.shaping()))
        new_row = dataclasses.replace(desired_row(name, settings, row, at), retired_at=None)
        added = repo.put_monitors_if(
            [new_row], expect=[row], event_type=MONITOR_ADDED, payload=payload, actor=actor, ts=ts
        )
        if added is not None:
            records.append(added)
    for name, row in rows.items():
        if name in portfolio or row.retired_at is not None:
            continue
        retired = repo.put_monitors_if(
            [dataclasses.replace(row, retired_at=at)],
            expect=[row],
            event_type=MONITOR_RETIRED,
            payload={"monitor": name, "config_hash": row.config_hash},
            actor=actor,
            ts=ts,
        )
        if retired is not None:
            records.append(retired)
    return records
