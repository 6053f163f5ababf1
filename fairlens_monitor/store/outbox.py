"""The notification outbox: rows written in the transaction of the event they report.

The **log** step's hand-off to delivery. When a write transaction appends an audit event a
route names (``notify.on``: an alert raised, acknowledged or resolved, a drift signal, a
source failing N runs in a row), :func:`enqueue` inserts one ``notifications`` row per
channel in that same transaction: the event and its notification commit together or not at
all. A worker (``ops.notify.worker``) delivers the row later, with retries; its attempts
change ``status``, ``attempts``, ``next_attempt_at`` and ``last_status`` here and are
recorded on the chain (``notification_delivered`` / ``notification_failed``).

A row holds what identifies the message — monitor, channel, event, alert id, the audit
record's seq and hash, an idempotency key — never its body, the alert's explanation or a
secret: the message is built at send time from the stored rows (the explanation decrypted
then, and only when configured). The idempotency key is
``SHA-256(audit hash ":" channel)``, so the same event to the same channel has one key, on
every retry and after any crash, and a receiver can drop a second copy.

:data:`DOORBELL` tells a worker in this process that a commit wrote notifications: a session
whose transaction inserted rows here rings it once that transaction has committed
(:func:`watch_commits`, installed on every repository's sessions), so the daemon's worker
delivers at once instead of at its next poll; the poll stays for rows other processes write.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    CheckConstraint,
    CursorResult,
    Index,
    Integer,
    String,
    Table,
    func,
    select,
    update,
)
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from fairlens_monitor.audit.chain import AuditRecord
from fairlens_monitor.audit.events import (
    ALERT_ACKNOWLEDGED,
    ALERT_RAISED,
    ALERT_RESOLVED,
    CYCLE_FAILED,
)
from fairlens_monitor.store.models import Base, Run, UTCDateTime
from fairlens_monitor.store.prepared import insert_values

STATUSES = ("pending", "delivered", "dead")
TEST_EVENT = "test"  # ``notify test CHANNEL``: a row with no audit event behind it
CHAIN_FAILED = "chain_failed"  # the daemon's walk found the trail tampered (no event behind it)
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")  # an anomaly's kind, a table's name

Routes = Mapping[str, Sequence[str]]  # notify event -> channel names (config.notify)
_WROTE = "fairlens_outbox_wrote"  # Session.info key: this transaction inserted notifications


class Doorbell:
    """Wakes this process's outbox workers when a commit wrote notifications.

    Each worker :meth:`subscribe` s an event of its own; :meth:`ring` sets them all. A worker
    clears its event *before* it looks for due rows, so a ring is never lost: a commit that
    rang before the clear is visible to the look that follows it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: set[threading.Event] = set()

    def subscribe(self) -> threading.Event:
        """A new event, set by every later :meth:`ring` until :meth:`unsubscribe`."""
        ev = threading.Event()
        with self._lock:
            self._events.add(ev)
        return ev

    def unsubscribe(self, ev: threading.Event) -> None:
        """Stop setting ``ev``."""
        with self._lock:
            self._events.discard(ev)

    def ring(self) -> None:
        """Set every subscriber's event (cheap; called after a commit)."""
        with self._lock:
            for ev in self._events:
                ev.set()


DOORBELL = Doorbell()


def watch_commits(sessions: sessionmaker[Session]) -> None:
    """Ring :data:`DOORBELL` after each commit of ``sessions`` that inserted notifications.

    Args:
        sessions: a repository's session factory (idempotent: installed once).
    """
    if not sa_event.contains(sessions, "after_commit", _after_commit):
        sa_event.listen(sessions, "after_commit", _after_commit)
        sa_event.listen(sessions, "after_rollback", _after_rollback)


def _after_commit(session: Session) -> None:
    if session.info.pop(_WROTE, False):
        DOORBELL.ring()


def _after_rollback(session: Session) -> None:
    session.info.pop(_WROTE, None)  # nothing was written after all


class Notification(Base):
    """One message to one channel, waiting, delivered or given up (revision 0017)."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'dead')", name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        # the worker's one query: the due pending rows, oldest first
        Index("ix_notifications_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    monitor: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    alert_id: Mapped[int | None] = mapped_column(Integer)
    audit_seq: Mapped[int | None] = mapped_column(Integer)
    audit_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[str | None] = mapped_column(String(64))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


NOTIFICATIONS: Table = Notification.__table__  # type: ignore[assignment]
RUNS: Table = Run.__table__  # type: ignore[assignment]


def idempotency_key(audit_hash: str, channel: str) -> str:
    """The key a receiver deduplicates on: ``SHA-256(audit_hash ":" channel)`` in hex."""
    return hashlib.sha256(f"{audit_hash}:{channel}".encode()).hexdigest()


def notify_event(record: AuditRecord) -> str | None:
    """The notify event an audit record reports, or None (pure).

    ``alert_raised`` of kind ``drift`` is ``drift_signalled``; a person's or the cycle's
    ``alert_resolved`` is ``alert_resolved``; ``cycle_failed`` is decided by
    :func:`enqueue` (``source_failing`` after N failed runs in a row).
    """
    kind = record.payload.get("kind")
    if record.event_type == ALERT_RAISED:
        return "drift_signalled" if kind == "drift" else ALERT_RAISED
    if record.event_type in (ALERT_ACKNOWLEDGED, ALERT_RESOLVED):
        return record.event_type  # the notify event of the same name
    return None


def alert_of(record: AuditRecord) -> int | None:
    """The alert id an alert event names (``alert_id``, or the first of ``alert_ids``)."""
    payload = record.payload
    value = payload.get("alert_id")
    if value is None and isinstance(payload.get("alert_ids"), list) and payload["alert_ids"]:
        value = payload["alert_ids"][0]
    return value if isinstance(value, int) else None


def enqueue(
    s: Session,
    records: Sequence[AuditRecord],
    routes: Routes | None,
    *,
    at: datetime,
    failing_after: int | None = None,
) -> list[int]:
    """Insert the notifications ``records`` call for, inside the caller's transaction.

    Args:
        s: the write transaction that appended ``records`` (serialised).
        records: the audit records just appended.
        routes: ``{notify event: channel names}`` of the records' monitor; None or empty
            inserts nothing.
        at: now (``created_at`` and the first ``next_attempt_at``).
        failing_after: a ``cycle_failed`` record is ``source_failing`` when it makes
            exactly this many failed runs in a row of its monitor (so one streak notifies
            once); None ignores failed runs.

    Returns:
        The ids of the rows inserted.
    """
    if not routes:
        return []
    rows: list[dict[str, Any]] = []
    for record in records:
        monitor = str(record.payload.get("monitor", "default"))
        event = notify_event(record)
        if (
            event is None
            and record.event_type == CYCLE_FAILED
            and failing_after is not None
            and failed_in_a_row(s, monitor) == failing_after
        ):
            event = "source_failing"
        for channel in routes.get(event or "", ()) if event else ():
            rows.append(
                {
                    "created_at": at,
                    "monitor": monitor,
                    "channel": channel,
                    "event_type": event,
                    "idempotency_key": idempotency_key(record.hash, channel),
                    "alert_id": alert_of(record),
                    "audit_seq": record.seq,
                    "audit_hash": record.hash,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": at,
                }
            )
    if not rows:
        return []
    s.info[_WROTE] = True
    return insert_values(s.connection(), NOTIFICATIONS, rows)


def failed_in_a_row(s: Session, monitor: str) -> int:
    """How many of ``monitor``'s newest runs failed, back to its newest ``ok`` run."""
    last_ok = (
        select(func.coalesce(func.max(RUNS.c.id), 0))
        .where(RUNS.c.monitor == monitor, RUNS.c.status == "ok")
        .scalar_subquery()
    )
    query = (
        select(func.count())
        .select_from(RUNS)
        .where(RUNS.c.monitor == monitor, RUNS.c.id > last_ok, RUNS.c.status == "failed")
    )
    return int(s.execute(query).scalar() or 0)


def add_one(
    s: Session, *, monitor: str, channel: str, event_type: str, key: str, at: datetime
) -> int | None:
    """Insert one notification with no audit event behind it (a test, a chain failure).

    Returns:
        Its id, or None when a row with ``key`` exists already (the same report again).
    """
    exists = s.execute(
        select(NOTIFICATIONS.c.id).where(NOTIFICATIONS.c.idempotency_key == key)
    ).first()
    if exists is not None:
        return None
    row = {
        "created_at": at,
        "monitor": monitor,
        "channel": channel,
        "event_type": event_type,
        "idempotency_key": key,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": at,
    }
    s.info[_WROTE] = True
    return insert_values(s.connection(), NOTIFICATIONS, [row])[0]


def add_chain_failure(
    s: Session,
    *,
    monitor: str,
    channel: str,
    key: str,
    at: datetime,
    seq: int | None,
    kind: str,
    table: str | None,
    row_id: int | None,
) -> int | None:
    """Insert one ``chain_failed`` notification carrying its first anomaly's location.

    A ``chain_failed`` row reports no audit record, so its ``audit_seq`` holds the first
    anomaly's seq (None: a stored row no event accounts for) and its ``audit_hash`` the rest
    of the location as ``kind[:table:id]`` (read back by :func:`anomaly_of`): names and
    numbers from the verifier, never a stored value.

    Returns:
        Its id, or None when a row with ``key`` exists already (the same finding again).

    Raises:
        ValueError: ``kind`` or ``table`` is not a plain name (a-z, 0-9, _).
    """
    for name in (kind, table):
        if name is not None and not _NAME.fullmatch(name):
            raise ValueError("chain_failed: an anomaly's kind and table are plain names")
    place = kind if table is None else f"{kind}:{table}:{'' if row_id is None else row_id}"
    new = add_one(s, monitor=monitor, channel=channel, event_type=CHAIN_FAILED, key=key, at=at)
    if new is not None:
        s.execute(
            update(NOTIFICATIONS)
            .where(NOTIFICATIONS.c.id == new)
            .values(audit_seq=seq, audit_hash=place[:64])
        )
    return new


def anomaly_of(row: Notification) -> dict[str, Any]:
    """The first anomaly's location a ``chain_failed`` row carries: ``seq``, ``kind``,
    ``table``, ``row_id`` (the keys known; empty for a row written before they were kept)."""
    if row.event_type != CHAIN_FAILED or not row.audit_hash:
        return {}
    kind, _, rest = row.audit_hash.partition(":")
    table, _, row_id = rest.partition(":")
    out: dict[str, Any] = {"seq": row.audit_seq, "kind": kind, "table": table or None}
    out["row_id"] = int(row_id) if row_id.isdigit() else None
    return {k: v for k, v in out.items() if v is not None}


def due(s: Session, now: datetime, limit: int) -> list[Notification]:
    """The pending rows whose next attempt is due, oldest first (at most ``limit``)."""
    query = (
        select(Notification)
        .where(Notification.status == "pending", Notification.next_attempt_at <= now)
        .order_by(Notification.next_attempt_at, Notification.id)
        .limit(limit)
    )
    return list(s.scalars(query))


def claim(s: Session, row: Notification, *, now: datetime, retry_at: datetime) -> bool:
    """Take one attempt of ``row``: count it and push its next attempt to ``retry_at``.

    Committed before the message is sent, so an attempt cut short by a crash is counted and
    retried at ``retry_at`` with the same key; conditional on the row being unchanged, so two
    workers never send the same attempt.

    Returns:
        True when this worker took the attempt.
    """
    done = s.execute(
        update(NOTIFICATIONS)
        .where(
            NOTIFICATIONS.c.id == row.id,
            NOTIFICATIONS.c.status == "pending",
            NOTIFICATIONS.c.attempts == row.attempts,
        )
        .values(attempts=row.attempts + 1, last_attempt_at=now, next_attempt_at=retry_at)
    )
    return bool(cast("CursorResult[Any]", done).rowcount == 1)


def settle(
    s: Session,
    row_id: int,
    *,
    status: str,
    last_status: str,
    now: datetime,
    next_at: datetime | None,
) -> None:
    """Record an attempt's outcome: ``delivered``, ``dead`` or ``pending`` until ``next_at``."""
    if status not in STATUSES:
        raise ValueError(f"status: expected one of {', '.join(STATUSES)}")
    values: dict[str, Any] = {"status": status, "last_status": last_status[:64]}
    if status == "delivered":
        values["delivered_at"] = now
    if next_at is not None:
        values["next_attempt_at"] = next_at
    s.execute(update(NOTIFICATIONS).where(NOTIFICATIONS.c.id == row_id).values(**values))


def listing(s: Session, *, failed: bool, limit: int) -> list[Notification]:
    """The newest rows (``failed``: dead ones, and pending ones that failed at least once)."""
    query = select(Notification).order_by(Notification.id.desc()).limit(limit)
    if failed:
        query = query.where(
            (Notification.status == "dead")
            | ((Notification.status == "pending") & (Notification.attempts > 0))
        )
    return list(s.scalars(query))
