"""The outbox worker: delivers due notifications with retries, and records every attempt.

After the **log** step. The daemon's thread for it (``ops.notify.courier``) sends the due
rows lane by lane (:func:`due_lanes`, :func:`attempt_lane`); ``notify test`` and ``notify
send`` run :func:`deliver_due` once from the command line. For each due row of
``notifications`` (``store.outbox``), in three short transactions:

1. **claim** — count the attempt and push ``next_attempt_at`` to the retry time (committed
   before anything is sent, conditional on the row being unchanged: two workers never send
   the same attempt, and an attempt cut short by ``kill -9`` is retried at that time);
2. **send** — build the message from the stored rows (the alert's explanation decrypted only
   with ``notify.include_explanation``) and send it (``ops.notify.channels``), outside any
   transaction;
3. **settle** — mark the row ``delivered``, ``dead`` (a permanent refusal, or
   ``notify.max_attempts`` reached) or ``pending`` until the backoff's next time, and append
   ``notification_delivered`` / ``notification_failed`` (monitor, channel, event, attempt,
   response status; never the body or a secret) — one transaction.

Delivery is at least once: a crash between 2 and 3 sends that attempt again, with the same
``Idempotency-Key`` (and, by e-mail, the same ``Message-ID``), so a receiver can drop the copy.
The clock and the jitter are passed in. A *lane* is one monitor's messages to one channel:
its rows go in order on one thread (an acknowledgement never overtakes its alert), lanes go
side by side on a pool of ``notify.workers`` threads, each row still claimed, sent and
settled on its own as above.
"""

from __future__ import annotations

import hashlib
import logging
import random
import secrets
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from fairlens_monitor.audit.chain import rfc3339
from fairlens_monitor.audit.events import NOTIFICATION_DELIVERED, NOTIFICATION_FAILED
from fairlens_monitor.audit.verify import Anomaly
from fairlens_monitor.config.notify import Channel, NotifySettings
from fairlens_monitor.ops.notify import message as m
from fairlens_monitor.ops.notify.channels import Outcome, send
from fairlens_monitor.security.crypto import AlertCipher
from fairlens_monitor.store import outbox
from fairlens_monitor.store.cyclewrite import append, serialise
from fairlens_monitor.store.models import Alert, Reading
from fairlens_monitor.store.outbox import Notification
from fairlens_monitor.store.repository import Repository

log = logging.getLogger(__name__)
BATCH = 50  # rows per look; the next look takes the rest
POLL_SECONDS = 1.0  # how often the daemon's worker looks for due rows without being woken
Sender = Callable[[Channel, dict[str, Any], int], Outcome]


@dataclass(frozen=True)
class Attempt:
    """One attempt this worker made: the row, its attempt number and the outcome."""

    notification_id: int
    channel: str
    attempt: int
    status: str  # the row's status after it: delivered, pending or dead
    response: str


Lane = tuple[str, str]  # (monitor, channel): its messages are sent in the order written


def deliver_due(
    repo: Repository,
    notify: NotifySettings,
    *,
    now: Callable[[], datetime],
    cipher: AlertCipher | None = None,
    jitter: Callable[[], float] = random.random,
    actor: str = "daemon",
    only: Iterable[int] | None = None,
    sender: Sender | None = None,
    limit: int = BATCH,
    pool: Executor | None = None,
) -> list[Attempt]:
    """Attempt every due pending notification once (``notify send``, ``notify test``).

    Args:
        repo: a writable repository (the daemon's, fenced by its lease).
        notify: the service's ``notify`` settings (channels, attempts, backoff, page).
        now: the clock (aware UTC).
        cipher: decrypts the explanation when ``notify.include_explanation``; None leaves
            it out.
        jitter: a number in [0, 1) per retry (``random.random``).
        actor: recorded on the audit events (``daemon`` or ``cli``).
        only: attempt just these ids (``notify test``), due or not.
        sender: sends one message (``channels.send``; tests may pass their own).
        limit: rows per call.
        pool: send on these threads (``notify.workers`` of them): each lane (one monitor to
            one channel) in order on one thread, the others beside it; each row claimed,
            sent and settled on its own. None sends one after the other.

    Returns:
        The attempts made, lane by lane (a row another worker claimed first is skipped).
    """
    lanes = list(due_lanes(repo, now=now(), only=only, limit=limit).values())

    def lane(rows: list[Notification]) -> list[Attempt]:
        return attempt_lane(
            repo, notify, rows, now=now, cipher=cipher, jitter=jitter, actor=actor, sender=sender
        )

    done = pool.map(lane, lanes) if pool is not None and len(lanes) > 1 else map(lane, lanes)
    return [a for attempts in done for a in attempts]


def due_lanes(
    repo: Repository, *, now: datetime, only: Iterable[int] | None = None, limit: int = BATCH
) -> dict[Lane, list[Notification]]:
    """The due pending rows, oldest first, grouped by lane (monitor, channel).

    Args:
        repo: the repository.
        now: rows whose next attempt is at or before this are due.
        only: just these ids, if pending (due or not).
        limit: at most this many rows.

    Returns:
        ``{(monitor, channel): rows in the order to send them}``.
    """
    with repo.sessions() as s:
        if only is None:
            rows = outbox.due(s, now, limit)
        else:
            query = select(Notification).where(
                Notification.id.in_(list(only)), Notification.status == "pending"
            )
            rows = list(s.scalars(query.order_by(Notification.id)))
    lanes: dict[Lane, list[Notification]] = {}
    for row in rows:
        lanes.setdefault((row.monitor, row.channel), []).append(row)
    return lanes


def attempt_lane(
    repo: Repository,
    notify: NotifySettings,
    rows: Iterable[Notification],
    *,
    now: Callable[[], datetime],
    cipher: AlertCipher | None = None,
    jitter: Callable[[], float] = random.random,
    actor: str = "daemon",
    sender: Sender | None = None,
) -> list[Attempt]:
    """Attempt the rows of one lane, one after the other (see :func:`deliver_due`).

    Returns:
        The attempts made (a row another worker claimed first is skipped).
    """
    return [
        a
        for row in rows
        if (a := _attempt(repo, notify, row, now, cipher, jitter, actor, sender)) is not None
    ]


def _attempt(
    repo: Repository,
    notify: NotifySettings,
    row: Notification,
    now: Callable[[], datetime],
    cipher: AlertCipher | None,
    jitter: Callable[[], float],
    actor: str,
    sender: Sender | None,
) -> Attempt | None:
    at = now()
    number = row.attempts + 1
    limit = 1 if row.event_type == outbox.TEST_EVENT else notify.max_attempts
    delay = m.backoff(
        number, base=notify.backoff_seconds, cap=notify.max_backoff_seconds, jitter=jitter()
    )
    with repo.sessions.begin() as s:
        if not outbox.claim(s, row, now=at, retry_at=at + timedelta(seconds=delay)):
            return None
    channel = notify.channels.get(row.channel)
    if channel is None:  # the channel left the config after the row was written
        outcome = Outcome(False, "config: no such channel", permanent=True)
    else:
        try:
            msg = m.message(
                facts(repo, row, cipher if notify.include_explanation else None),
                page_url=notify.page_url,
                sent_at=rfc3339(at),
            )
            unix = int(at.timestamp())
            outcome = (sender or _send)(channel, msg, unix)
        except Exception as exc:  # a bug or a database error: count it, retry later
            log.error("notification %d not sent: %s", row.id, type(exc).__name__)
            outcome = Outcome(False, f"error: {type(exc).__name__}")
    status = (
        "delivered"
        if outcome.delivered
        else "dead"
        if outcome.permanent or number >= limit
        else "pending"
    )
    done = now()
    with repo.sessions.begin() as s:
        serialise(s)
        outbox.settle(
            s,
            row.id,
            status=status,
            last_status=outcome.status,
            now=done,
            next_at=None,  # a retry waits until the claim's retry time
        )
        payload: dict[str, Any] = {
            "notification_id": row.id,
            "monitor": row.monitor,
            "channel": row.channel,
            "event": row.event_type,
            "attempt": number,
            "status": status,
            "response": outcome.status,
            "idempotency_key": row.idempotency_key,
        }
        if row.audit_seq is not None:
            payload["reports_seq"] = row.audit_seq
        kind = NOTIFICATION_DELIVERED if outcome.delivered else NOTIFICATION_FAILED
        append(s, kind, actor, payload, rfc3339(done))
    if not outcome.delivered:
        log.warning(
            "notification %d to %s: attempt %d %s (%s)",
            row.id,
            row.channel,
            number,
            status,
            outcome.status,
        )
    return Attempt(row.id, row.channel, number, status, outcome.status)


def _send(channel: Channel, msg: dict[str, Any], unix: int) -> Outcome:
    return send(channel, msg, now_unix=unix)


def facts(repo: Repository, row: Notification, cipher: AlertCipher | None) -> m.Facts:
    """What ``row`` reports, read now from the alert and its reading.

    Args:
        repo: the repository.
        row: the notification.
        cipher: decrypts the alert's explanation; None leaves it out.

    Returns:
        The facts of the message.
    """
    base: dict[str, Any] = {
        "event": row.event_type,
        "monitor": row.monitor,
        "channel": row.channel,
        "idempotency_key": row.idempotency_key,
        "alert_id": row.alert_id,
        "audit_seq": row.audit_seq,
        "audit_hash": row.audit_hash,
    }
    if row.event_type == outbox.CHAIN_FAILED:  # no audit record: where the trail broke
        anomaly = outbox.anomaly_of(row)
        base.update(audit_seq=None, audit_hash=None, extra={"anomaly": anomaly} if anomaly else {})
    with repo.sessions() as s:
        if row.event_type == "source_failing":
            base["failed_runs"] = outbox.failed_in_a_row(s, row.monitor)
        alert = None if row.alert_id is None else s.get(Alert, row.alert_id)
        if alert is None:
            return m.Facts(**base)
        reading = s.get(Reading, alert.reading_id)
        explanation = None if cipher is None else cipher.decrypt(alert.token)
    extra: dict[str, Any] = {}
    if reading is not None:
        extra = {
            "dir": reading.dir,
            "dir_ci_low": reading.dir_ci_low,
            "dir_ci_high": reading.dir_ci_high,
            "confidence": reading.confidence,
            "measured_at": rfc3339(reading.measured_at),
            "groups": (
                m.Group(reading.group_label, reading.group_applicants, reading.group_approved),
                m.Group(
                    reading.reference_label,
                    reading.reference_applicants,
                    reading.reference_approved,
                ),
            ),
        }
    return m.Facts(
        **base,
        kind=alert.kind,
        state=alert.state,
        verdict=alert.verdict,
        explanation=explanation,
        **{"dir": alert.dir, **extra},
    )


def enqueue_test(repo: Repository, channel: str, *, at: datetime) -> int:
    """Write a ``test`` notification to ``channel`` (no audit event behind it).

    Its key is random (every test is a new message); it gets one attempt.

    Returns:
        The row's id.
    """
    key = hashlib.sha256(f"test:{channel}:{secrets.token_hex(16)}".encode()).hexdigest()
    with repo.sessions.begin() as s:
        new = outbox.add_one(
            s, monitor=repo.monitor, channel=channel, event_type=outbox.TEST_EVENT, key=key, at=at
        )
    if new is None:  # pragma: no cover - a random 256-bit key does not repeat
        raise RuntimeError("test notification key collided")
    return new


def enqueue_chain_failure(
    repo: Repository, routes: Mapping[str, tuple[str, ...]], *, first: Anomaly, at: datetime
) -> list[int]:
    """Write a ``chain_failed`` notification per routed channel, once per finding.

    There is no audit event to report with (a tampered trail is reported, not amended), so
    the key is ``SHA-256("chain_failed:" location ":" channel)`` (``message.location``): the
    same first anomaly found by the next walk writes nothing new. The row keeps the
    location — seq, kind, table and row id, never a stored value — for the message.

    Args:
        repo: a writable repository.
        routes: ``notify.on``.
        first: the walk's first anomaly.
        at: now.

    Returns:
        The ids of the rows written.
    """
    where = m.location(place_of(first))
    ids = []
    with repo.sessions.begin() as s:
        for channel in routes.get(outbox.CHAIN_FAILED, ()):
            key = hashlib.sha256(f"chain_failed:{where}:{channel}".encode()).hexdigest()
            new = outbox.add_chain_failure(
                s,
                monitor=repo.monitor,
                channel=channel,
                key=key,
                at=at,
                seq=first.seq,
                kind=first.kind,
                table=first.table,
                row_id=first.id,
            )
            if new is not None:
                ids.append(new)
    return ids


def place_of(anomaly: Anomaly) -> dict[str, Any]:
    """An anomaly's location as a message carries it: ``seq``, ``kind``, ``table``,
    ``row_id`` (the ones known)."""
    place: dict[str, Any] = {
        "seq": anomaly.seq,
        "kind": anomaly.kind,
        "table": anomaly.table,
        "row_id": anomaly.id,
    }
    return {k: v for k, v in place.items() if v is not None}


def status_of(repo: Repository, notification_id: int) -> tuple[str, int, str | None]:
    """``(status, attempts, last_status)`` of one row."""
    with repo.sessions() as s:
        row = s.get(Notification, notification_id)
        if row is None:
            raise LookupError(f"no notification with id {notification_id}")
        return row.status, row.attempts, row.last_status
