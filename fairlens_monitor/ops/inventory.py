"""The portfolio's inventory: each monitor's state, and the people's changes to it.

What an examiner asks for first and what ``monitors list|pause|resume`` and ``audit
--monitor`` show. The state (active, paused, retired), the last reading and its verdict, open
alerts and staleness come from the ``v_monitor_status`` view (one definition of "stale", the
auditors' and the command's); the config adds the monitors not yet run. A pause or resume is
the ``monitors`` row and its audit event (``monitor_paused``/``monitor_resumed``, naming the
monitor, who and their note) in one transaction; the config file is never edited.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, not_, or_, select, text

from fairlens_monitor.audit.chain import AuditRecord, rfc3339
from fairlens_monitor.audit.events import (
    ALERT_ACKNOWLEDGED,
    ALERT_RAISED,
    ALERT_RESOLVED,
    CONFIG_CHANGED,
    CYCLE_COMPLETED,
    CYCLE_FAILED,
    CYCLE_MISSED,
    MONITOR_PAUSED,
    MONITOR_RESUMED,
    SOURCE_FILE_CHANGED,
)
from fairlens_monitor.config.monitors import DEFAULT_MONITOR
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.errors import MonitorStateError
from fairlens_monitor.ops.governance import schedule_of
from fairlens_monitor.store.chainstore import RECORD_COLUMNS, checked_record
from fairlens_monitor.store.models import AuditEvent
from fairlens_monitor.store.repository import Repository

# Events a database wrote for its one monitor before monitors existed (revision 0015) name
# none: they are the `default` monitor's.
LEGACY_MONITOR_EVENTS = (
    CYCLE_COMPLETED,
    CYCLE_FAILED,
    CYCLE_MISSED,
    ALERT_RAISED,
    ALERT_ACKNOWLEDGED,
    ALERT_RESOLVED,
    CONFIG_CHANGED,
    SOURCE_FILE_CHANGED,
)


@dataclass(frozen=True)
class MonitorStatus:
    """One monitor as the inventory shows it.

    Attributes:
        name: the monitor's name.
        state: ``active``, ``paused`` or ``retired``.
        in_config: whether the config names it (a retired one's does not).
        schedule: how it runs (``every 60s``, ``cron 0 6 * * *``), from the config or, for a
            retired monitor, as last recorded.
        last_reading_at: RFC 3339 time of its newest reading, or None.
        verdict: that reading's verdict (its monitored scenario), or None.
        dir: that reading's DIR, or None.
        open_alerts: its open or acknowledged alert episodes.
        last_ok_run_at: RFC 3339 time of its newest successful run, or None.
        stale: no successful run within its expected interval plus grace (None: unknown,
            e.g. never run, retired or a cron schedule).
        paused_by: who paused it (while paused), or None.
        paused_at: RFC 3339 time it was paused (while paused), or None.
    """

    name: str
    state: str
    in_config: bool
    schedule: str | None
    last_reading_at: str | None = None
    verdict: str | None = None
    dir: float | None = None
    open_alerts: int = 0
    last_ok_run_at: str | None = None
    stale: bool | None = None
    paused_by: str | None = None
    paused_at: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The status as a plain dict (``monitors list --json``)."""
        return dataclasses.asdict(self)


def inventory(
    portfolio: Mapping[str, Settings], repo: Repository, *, now: datetime
) -> list[MonitorStatus]:
    """Every monitor of the config and of the database, by name.

    Args:
        portfolio: the config's monitors.
        repo: a (read-only) repository on the service's database.
        now: the time staleness is judged at (unused when the view judges it).

    Returns:
        One :class:`MonitorStatus` per monitor, sorted by name: the configured ones (active
        or paused, with no reading while never run) and the retired ones the table keeps.
    """
    del now  # v_monitor_status judges staleness with the database's own clock
    rows = {row.name: row for row in repo.monitor_rows()}
    views = _view_rows(repo)
    out: list[MonitorStatus] = []
    for name in sorted(set(portfolio) | set(rows)):
        row = rows.get(name)
        view = views.get(name, {})
        if name in portfolio:
            schedule: str | None = schedule_of(portfolio[name])[0]
        else:
            schedule = None if row is None else row.schedule
        if row is not None and (row.retired_at is not None or name not in portfolio):
            state = "retired"
        elif row is not None and row.paused:
            state = "paused"
        else:
            state = "active"
        paused = state == "paused" and row is not None
        out.append(
            MonitorStatus(
                name=name,
                state=state,
                in_config=name in portfolio,
                schedule=schedule,
                last_reading_at=_time(view.get("last_reading_at")),
                verdict=view.get("verdict"),
                dir=None if view.get("dir") is None else float(view["dir"]),
                open_alerts=int(view.get("open_alerts") or 0),
                last_ok_run_at=_time(view.get("last_ok_run_at")),
                stale=None
                if state != "active" or view.get("stale") is None
                else bool(view["stale"]),
                paused_by=row.paused_by if paused and row is not None else None,
                paused_at=_time(row.paused_at) if paused and row is not None else None,
            )
        )
    return out


def _view_rows(repo: Repository) -> dict[str, dict[str, Any]]:
    with repo.sessions() as s:
        result = s.execute(text("SELECT * FROM v_monitor_status"))
        return {str(r["monitor"]): dict(r) for r in result.mappings()}


def _time(value: Any) -> str | None:
    """RFC 3339 of a time as a view returns it: a datetime (PostgreSQL) or SQLite's text,
    both UTC."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        try:
            value = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)  # not a time this code wrote: shown as stored
    return rfc3339(value if value.tzinfo else value.replace(tzinfo=UTC))


def set_paused(
    repo: Repository,
    name: str,
    *,
    paused: bool,
    by: str,
    note: str | None,
    at: datetime,
    actor: str,
) -> AuditRecord | None:
    """Pause or resume a monitor: its row and the audit event naming it, one transaction.

    Args:
        repo: a writable repository on the service's database (sealed by the caller).
        name: the monitor (in the ``monitors`` table, not retired).
        paused: True to pause, False to resume.
        by: who does it (validated by the caller).
        note: why, or None (validated by the caller; recorded in clear on the chain).
        at: when (aware UTC).
        actor: the process (``cli``).

    Returns:
        The ``monitor_paused``/``monitor_resumed`` record, or None when the monitor was
        already in that state, or its row changed since it was read (another pause or
        resume got there first); nothing is then written.

    Raises:
        MonitorStateError: the monitor is not in the table or is retired.
    """
    row = next((r for r in repo.monitor_rows() if r.name == name), None)
    if row is None:
        raise MonitorStateError(name, "is not registered in the database yet; run 'once' first")
    if row.retired_at is not None:
        raise MonitorStateError(name, "is retired (the config no longer names it)")
    if row.paused == paused:
        return None
    new_row = dataclasses.replace(
        row,
        paused=paused,
        paused_at=at if paused else None,
        paused_by=by if paused else None,
    )
    return repo.put_monitors_if(  # None when someone else paused or resumed it meanwhile
        [new_row],
        expect=[row],
        event_type=MONITOR_PAUSED if paused else MONITOR_RESUMED,
        payload={"monitor": name, "by": by, "note": note},
        actor=actor,
        ts=rfc3339(at),
    )


def monitor_events(repo: Repository, name: str, last: int) -> list[AuditRecord]:
    """The newest ``last`` audit records whose payload names monitor ``name``, oldest first.

    For ``default``, also the per-monitor events written before monitors existed (they name
    none). The chain is read newest first, narrowed by the payload's text, and each candidate
    checked on its parsed payload.

    Raises:
        DamagedRecordError: a candidate record cannot be read as the record written.
    """
    escaped = name.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
    names_it = AuditEvent.canonical.like(f'%"monitor":"{escaped}"%', escape="\\")
    where: ColumnElement[bool] = names_it
    if name == DEFAULT_MONITOR:
        legacy = and_(
            AuditEvent.event_type.in_(LEGACY_MONITOR_EVENTS),
            not_(AuditEvent.canonical.like('%"monitor":%')),
        )
        where = or_(names_it, legacy)
    found: list[AuditRecord] = []
    with repo.sessions() as s:
        result = s.execute(
            select(*RECORD_COLUMNS).where(where).order_by(AuditEvent.id.desc()),
            execution_options={"yield_per": 500},
        )
        try:
            for row in result:
                record = checked_record(row)
                own = record.payload.get("monitor")
                if own == name or (
                    own is None
                    and name == DEFAULT_MONITOR
                    and record.event_type in LEGACY_MONITOR_EVENTS
                ):
                    found.append(record)
                    if len(found) == last:
                        break
        finally:
            result.close()
    return list(reversed(found))
