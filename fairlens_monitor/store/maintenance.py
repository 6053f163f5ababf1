"""Maintenance writes of the store: key rotation, people's alert transitions, retention.

Each is one transaction that also appends its audit event, under the same chain lock as a
cycle (``cyclewrite.serialise``). Kept apart from ``repository.py``, which holds the cycle's
reads and writes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from fairlens_monitor.audit.chain import AuditRecord
from fairlens_monitor.audit.events import (
    ALERT_ACKNOWLEDGED,
    ALERT_RESOLVED,
    CHAIN_PRUNED,
    KEYS_ROTATED,
    RETENTION_APPLIED,
    ROWS_BASELINE,
)
from fairlens_monitor.audit.rowforms import TABLES
from fairlens_monitor.monitoring import episodes
from fairlens_monitor.store.cyclewrite import append, serialise
from fairlens_monitor.store.models import (
    Alert,
    AuditEvent,
    CheckpointRow,
    GroupResult,
    Reading,
    Run,
    SourceFile,
)
from fairlens_monitor.store.repository import Repository
from fairlens_monitor.store.rowstore import (
    baseline_digests,
    baseline_tables,
    carried_ledger,
    row_digests,
)

if TYPE_CHECKING:
    from sqlalchemy import CursorResult


def reencrypt_alerts(
    repo: Repository,
    rotate: Callable[[str], str],
    new_key_id: str,
    payload: dict[str, Any],
    *,
    ts: str,
) -> AuditRecord:
    """Re-encrypt every alert token and record ``keys_rotated``, in one transaction.

    Args:
        repo: the repository.
        rotate: maps an old token to the same plaintext under the new key
            (``MultiFernet.rotate``).
        new_key_id: the new key's fingerprint, stored on every alert.
        payload: audit details (key ids); ``alerts`` and ``tokens`` (each alert id
            with the SHA-256 of its new token) are added here.
        ts: RFC 3339 time of the audit event.

    Returns:
        The ``keys_rotated`` record.

    Raises:
        Exception: whatever ``rotate`` or the database raised; nothing was changed.
    """
    with repo.sessions.begin() as s:
        serialise(s)
        tokens: list[list[Any]] = []
        ids: list[int] = []
        for alert in s.scalars(select(Alert).order_by(Alert.id)):
            alert.token, alert.key_id = rotate(alert.token), new_key_id
            tokens.append([alert.id, hashlib.sha256(alert.token.encode("ascii")).hexdigest()])
            ids.append(alert.id)
        s.flush()
        digests = row_digests(s, {"alerts": ids})
        return append(
            s,
            KEYS_ROTATED,
            "cli",
            {**payload, "alerts": len(tokens), "tokens": tokens, "row_digests": digests},
            ts,
        )


def newest_alert_tokens(repo: Repository, limit: int) -> list[tuple[int, str]]:
    """Return the id and token of the newest ``limit`` alerts, newest first."""
    with repo.sessions() as s:
        rows = s.execute(select(Alert.id, Alert.token).order_by(Alert.id.desc()).limit(limit)).all()
    return [(int(i), str(t)) for i, t in rows]


def list_alerts(
    repo: Repository, states: Sequence[str], last: int, *, every_monitor: bool = True
) -> list[Alert]:
    """Return the newest ``last`` alerts in ``states``, newest first: of every monitor, or
    (``every_monitor=False``) of ``repo.monitor`` only."""
    query = select(Alert).where(Alert.state.in_(tuple(states)))
    if not every_monitor:
        query = query.where(Alert.monitor == repo.monitor)
    with repo.sessions() as s:
        return list(s.scalars(query.order_by(Alert.id.desc()).limit(last)).all())


def transition_alert(
    repo: Repository,
    alert_id: int,
    to: str,
    *,
    by: str,
    note: str | None,
    at: datetime,
    ts: str,
    seal: Callable[[Session, AuditRecord], Any] | None = None,
) -> tuple[Alert, AuditRecord]:
    """Acknowledge or resolve an alert for a person, with its audit event, atomically.

    Args:
        repo: the repository.
        alert_id: the alert.
        to: ``acknowledged`` or ``resolved``.
        by: who (recorded in the audit event).
        note: why; required to resolve.
        at: when (``closed_at`` of a resolved alert).
        ts: RFC 3339 time of the audit event.
        seal: signs a checkpoint of the new head inside this transaction
            (``sealing.Sealer.now``), so the transition never commits unprotected; None
            signs none.

    Returns:
        The updated alert and the ``alert_acknowledged``/``alert_resolved`` record.

    Raises:
        LookupError: no alert has this id.
        ValueError: the transition is not allowed or the note is missing.
    """
    with repo.sessions.begin() as s:
        serialise(s)
        alert = s.get(Alert, alert_id)
        if alert is None:
            raise LookupError(f"no alert with id {alert_id}")
        episodes.manual_transition(alert.state, to, note)
        alert.state = to
        if to == "resolved":
            alert.closed_at = at
        event = ALERT_ACKNOWLEDGED if to == "acknowledged" else ALERT_RESOLVED
        s.flush()
        record = append(
            s,
            event,
            "cli",
            {
                "alert_ids": [alert.id],
                "kind": alert.kind,
                "monitor": alert.monitor,
                "by": by,
                "note": note or "",
                "row_digests": row_digests(s, {"alerts": [alert.id]}),
            },
            ts,
        )
        if seal is not None:
            seal(s, record)
        return alert, record


def apply_retention(
    repo: Repository,
    *,
    readings_before: datetime,
    runs_before: datetime,
    prune: Callable[[int, str], dict[str, Any]] | None,
    audit_before: str,
    dry_run: bool,
    ts: str,
) -> dict[str, Any]:
    """Delete expired rows, and prune the audit chain up to a signed checkpoint.

    In one transaction: resolved alerts created before ``readings_before``; the readings
    measured before it that no remaining alert points at, with their group rows and the
    files read for them (each path's newest record is kept, detached); runs that started
    before ``runs_before`` and have no reading left; and, when ``prune`` is given, the
    audit events up to the newest signed checkpoint whose event is older than
    ``audit_before`` — followed by the ``chain_pruned`` event that ``prune`` builds
    (signed) from that seq and its hash. With ``dry_run`` the transaction is rolled back
    after counting.

    Returns:
        Rows deleted (or that would be) per table, and ``pruned_to`` (None: no prune).
    """
    counts: dict[str, Any] = {}
    s = repo.sessions()
    try:
        s.begin()
        serialise(s)
        gone: dict[str, list[int]] = {}
        gone["alerts"] = _ids(
            s, select(Alert.id).where(Alert.state == "resolved", Alert.created_at < readings_before)
        )
        kept = select(Alert.reading_id).where(Alert.id.not_in(gone["alerts"]))
        expired = _ids(
            s,
            select(Reading.id).where(
                Reading.measured_at < readings_before, Reading.id.not_in(kept)
            ),
        )
        gone["group_results"] = _ids(
            s, select(GroupResult.id).where(GroupResult.reading_id.in_(expired))
        )
        # A file's newest record (per monitor) outlives its reading (reading_id NULL): a
        # new_files window must still know the file was measured. Older records of it go.
        newest = select(func.max(SourceFile.id)).group_by(SourceFile.monitor, SourceFile.path)
        files = _ids(s, select(SourceFile.id).where(SourceFile.reading_id.in_(expired)))
        kept_files = set(_ids(s, newest))
        gone["source_files"] = [i for i in files if i not in kept_files]
        detached = [i for i in files if i in kept_files]
        gone["readings"] = expired
        for model, table in (
            (Alert, "alerts"),
            (GroupResult, "group_results"),
            (SourceFile, "source_files"),
        ):
            counts[table] = _delete(s, delete(model).where(model.id.in_(gone[table])))
        s.execute(
            update(SourceFile)
            .where(SourceFile.id.in_(detached))
            .values(reading_id=None)
            .execution_options(synchronize_session=False)
        )
        counts["readings"] = _delete(s, delete(Reading).where(Reading.id.in_(expired)))
        gone["runs"] = _ids(
            s,
            select(Run.id).where(
                Run.started_at < runs_before,
                Run.id.not_in(select(Reading.run_id)),
                Run.id.not_in(select(Alert.run_id)),
                # each monitor's newest ok run is its next cycle's index (a paused monitor's
                # may be old): deleting it would hand out that index again
                Run.id.not_in(
                    select(func.max(Run.id)).where(Run.status == "ok").group_by(Run.monitor)
                ),
            ),
        )
        counts["runs"] = _delete(s, delete(Run).where(Run.id.in_(gone["runs"])))
        if any(gone.values()) or detached:
            # The rows deleted and the files detached, on the chain (rowcheck.RowLedger).
            append(
                s,
                RETENTION_APPLIED,
                "cli",
                {
                    **{k: v for k, v in counts.items()},
                    "rows_deleted": {k: v for k, v in gone.items() if v},
                    "row_digests": row_digests(s, {"source_files": detached}),
                },
                ts,
            )
        counts["audit_events"], counts["pruned_to"] = 0, None
        target = s.execute(
            select(CheckpointRow.seq, CheckpointRow.head_hash)
            .join(AuditEvent, AuditEvent.seq == CheckpointRow.seq)
            .where(AuditEvent.ts < audit_before, AuditEvent.hash == CheckpointRow.head_hash)
            .order_by(CheckpointRow.seq.desc())
            .limit(1)
        ).first()
        first = s.scalar(select(func.min(AuditEvent.seq)))
        if prune is not None and target is not None and first is not None and target[0] >= first:
            carried = carried_ledger(s, target[0])
            with _append_only_lifted(s):
                counts["audit_events"] = _delete(
                    s, delete(AuditEvent).where(AuditEvent.seq <= target[0])
                )
            append(
                s,
                CHAIN_PRUNED,
                "cli",
                {
                    **prune(target[0], target[1]),
                    "deleted_events": counts["audit_events"],
                    "rows_carried": carried,
                },
                ts,
            )
            counts["pruned_to"] = target[0]
        if dry_run:
            s.rollback()
        else:
            s.commit()
    except Exception:
        s.rollback()
        raise
    finally:
        s.close()
    return counts


# What each table a migration filled holds, for the note of its ``rows_baseline`` event.
MIGRATED = {
    "reading_rollups": "rollup rows computed from the stored readings by revision 0014",
    "monitors": "the default monitor inserted by revision 0015",
}


def record_row_baseline(repo: Repository, *, ts: str) -> AuditRecord | None:
    """Record the digests of rows no event records yet (once, on upgrade).

    Appends one ``rows_baseline`` event holding the digest of every stored row, when rows
    exist and no event records any digest yet — or of every ``reading_rollups`` row, when
    migration 0014 computed them from the stored readings and no event records any, and of
    the ``default`` monitor row migration 0015 inserted (``rowstore.baseline_tables``); the
    next signed checkpoint covers it. A baseline never overrides a digest an earlier event
    recorded (``rowcheck``).

    Args:
        repo: the repository (writable).
        ts: RFC 3339 time of the event.

    Returns:
        The event, or None when no baseline is needed.
    """
    with repo.sessions() as s:  # the common case: no chain lock taken (PostgreSQL)
        if not baseline_tables(s):
            return None
    with repo.sessions.begin() as s:
        serialise(s)
        tables = baseline_tables(s)
        if not tables:  # another process recorded it meanwhile
            return None
        digests = baseline_digests(s, tables)
        note = (
            "rows stored before row digests were recorded"
            if tables == TABLES
            else "; ".join(MIGRATED[t] for t in tables)
        )
        return append(
            s,
            ROWS_BASELINE,
            "cli",
            {
                "row_digests": digests,
                "note": note,
                "rows": {t: len(v) for t, v in digests.items() if t != "form"},
            },
            ts,
        )


def _ids(s: Session, statement: Any) -> list[int]:
    return [int(i) for i in s.scalars(statement)]


def _delete(s: Session, statement: Any) -> int:
    result = s.execute(statement.execution_options(synchronize_session=False))
    return int(cast("CursorResult[Any]", result).rowcount)


@contextmanager
def _append_only_lifted(s: Session) -> Iterator[None]:
    """Lift the audit table's no-DELETE trigger inside this transaction only (retention)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        yield
        s.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))
        return
    s.execute(text("DROP TRIGGER IF EXISTS audit_events_no_delete"))
    yield
    s.execute(
        text(
            "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
        )
    )
