"""The portfolio's monitors table: one row per monitor, read and written as :class:`MonitorRow`.

A monitor is a named decision stream with its own source, measurement, thresholds and
schedule (``config.monitors``); every run, reading, group result, alert and source file row
names its monitor (revision 0015). This module is the ``monitors`` table's one home: the
frozen :class:`MonitorRow`, the name rule, the reads, and the upsert that
``Repository.put_monitors`` (governance: added, changed, paused, resumed, retired) and a
monitor's first cycle (``cyclewrite.ensure_monitor``) run inside their serialised write
transactions, where the event recording the rows' digests is appended too. The view
``v_monitor_status`` (the inventory) reads this table.

Imports: ``store.models`` only (plus ``config`` types), so ``cyclewrite`` and
``repository`` can both use it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from fairlens_monitor.store.models import DEFAULT_MONITOR, Monitor

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from fairlens_monitor.config.settings import Settings

__all__ = [
    "DEFAULT_MONITOR",
    "NAME_PATTERN",
    "MonitorRow",
    "check_name",
    "exists",
    "listing",
    "read_rows",
    "row_for",
    "upsert",
]

MONITORS: Table = Monitor.__table__  # type: ignore[assignment]
NAME_PATTERN = re.compile(r"[a-z0-9_]{1,64}")  # what config.monitors accepts, as stored


@dataclass(frozen=True)
class MonitorRow:
    """One monitor as the ``monitors`` table holds it.

    ``schedule`` is as configured (``"every 60s"``, ``"cron 0 6 * * *"``);
    ``interval_seconds`` the expected gap between its runs (``v_monitor_status.stale``
    compares the newest successful run with it); None where unknown.
    """

    name: str
    created_at: datetime
    retired_at: datetime | None = None
    paused: bool = False
    paused_at: datetime | None = None
    paused_by: str | None = None
    schedule: str | None = None
    interval_seconds: float | None = None
    config_hash: str | None = None


_FIELDS = tuple(f.name for f in fields(MonitorRow))
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # as the row forms write a time (UTC, microseconds)


def listing(row: MonitorRow) -> dict[str, Any]:
    """The row's values as its event's payload carries them (``"rows": [...]``), so the trail
    itself says what each monitor's schedule, interval and state were — and migration 0015
    can put the rows back, exactly as recorded, after a downgrade and upgrade.

    Returns:
        Plain JSON data: every field, times as RFC 3339 UTC text with microseconds.
    """
    out: dict[str, Any] = {}
    for name in _FIELDS:
        value = getattr(row, name)
        out[name] = (
            value.astimezone(UTC).strftime(TIME_FORMAT) if isinstance(value, datetime) else value
        )
    return out


def check_name(name: object, what: str = "monitor") -> str:
    """Return ``name`` when it is a valid monitor name.

    Args:
        name: the name to check.
        what: how the caller names the argument, for the message.

    Returns:
        The name.

    Raises:
        ValueError: not 1-64 characters of ``a-z``, ``0-9`` and ``_`` (the value itself is
            not quoted).
    """
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise ValueError(
            f"{what}: a monitor name is 1 to 64 characters of a-z, 0-9 and _; "
            "rename the monitor in the config's monitors: section"
        )
    return name


def describe_schedule(settings: Settings) -> tuple[str, float | None]:
    """The schedule as the monitors table shows it, and the expected gap between runs.

    Args:
        settings: the monitor's validated settings.

    Returns:
        ``("every 60s", 60.0)`` for an interval; ``("cron 0 6 * * 1", 604800.0)`` for a cron
        schedule, whose gap is the longest between two of its fires (what the inventory's
        staleness allows).
    """
    schedule = settings.schedule
    return schedule.describe(), float(schedule.expected_gap_seconds)


def row_for(name: str, settings: Settings, at: datetime) -> MonitorRow:
    """The row a monitor with these settings gets when it is first written.

    Args:
        name: the monitor's name (checked).
        settings: its validated settings (schedule and config hash).
        at: the creation time (aware UTC).

    Returns:
        An active, unpaused row.

    Raises:
        ValueError: the name is not a valid monitor name.
    """
    schedule, interval = describe_schedule(settings)
    return MonitorRow(
        name=check_name(name),
        created_at=at,
        schedule=schedule,
        interval_seconds=interval,
        config_hash=settings.config_hash(),
    )


_BY_NAME = select(MONITORS.c.id).where(MONITORS.c.name == bindparam("name"))
_ALL = select(*(MONITORS.c[f] for f in _FIELDS)).order_by(MONITORS.c.name)
_UPDATE = update(MONITORS).where(MONITORS.c.id == bindparam("row_id"))


def exists(s: Session | Connection, name: str) -> bool:
    """True when ``monitors`` holds a row named ``name`` (one unique-index lookup)."""
    return s.execute(_BY_NAME, {"name": name}).first() is not None


def read_rows(s: Session | Connection) -> list[MonitorRow]:
    """Every monitor row, by name."""
    return [MonitorRow(**dict(r._mapping)) for r in s.execute(_ALL)]


def upsert(s: Session, rows: Sequence[MonitorRow]) -> list[int]:
    """Write these rows (insert by name, or update every column of the row of that name)
    inside the caller's serialised write transaction.

    Args:
        s: the write transaction's session.
        rows: the rows, names unique (checked).

    Returns:
        The ids of the rows written, in ``rows`` order (for their row digests).

    Raises:
        ValueError: a name is invalid or given twice.
    """
    names = [check_name(r.name, "put_monitors rows") for r in rows]
    if len(set(names)) != len(names):
        raise ValueError("put_monitors rows: a monitor name is given twice; give each once")
    conn = s.connection()
    ids = []
    for row in rows:
        values: dict[str, Any] = asdict(row)
        found = conn.execute(_BY_NAME, {"name": row.name}).first()
        if found is None:
            ids.append(
                int(conn.execute(insert(MONITORS).returning(MONITORS.c.id), values).scalar_one())
            )
        else:
            conn.execute(_UPDATE, {"row_id": int(found[0]), **values})
            ids.append(int(found[0]))
    return ids
