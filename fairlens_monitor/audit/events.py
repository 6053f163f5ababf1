"""Audit events: the names of the event types, the JSON shape of one record, where an
anomaly is.

simulate → measure → detect → alert → **log**. The ``audit`` command, the cycle's JSON and
the examiner's export show a record in this one shape (the ``audit_history`` fields plus the
chain links).
"""

from __future__ import annotations

from typing import Any

from fairlens_monitor.audit.chain import AuditRecord
from fairlens_monitor.audit.verify import Anomaly

# The event types on the chain: the one place their names are written. An auditor's SQL
# filters on these strings (docs/AUDITORS.md), so a name never changes once released.
CYCLE_COMPLETED = "cycle_completed"  # a cycle's reading, group results and alerts were stored
CYCLE_FAILED = "cycle_failed"  # a cycle failed; its run row holds the masked error
CYCLE_MISSED = "cycle_missed"  # scheduled cycles did not run (busy, stopped, not leading)
ALERT_RAISED = "alert_raised"  # an alert episode opened (the explanation is only stored encrypted)
ALERT_ACKNOWLEDGED = "alert_acknowledged"  # a person acknowledged an open alert
ALERT_RESOLVED = "alert_resolved"  # an alert episode closed, by clean readings or by a person
CONFIG_CHANGED = "config_changed"  # the settings that shape a reading changed (old and new)
KEYS_ROTATED = "keys_rotated"  # the alert key was rotated and stored tokens re-encrypted
KEY_ROTATION_FINISHED = "key_rotation_finished"  # an interrupted rotation was completed
RETENTION_APPLIED = "retention_applied"  # rows past their retention period were deleted
BACKUP_MADE = "backup_made"  # a verified backup copy was written
BACKUP_FAILED = "backup_failed"  # a scheduled backup failed
CHAIN_STARTED = "chain_started"  # a new chain was started on purpose (--new-chain)
CHAIN_PRUNED = "chain_pruned"  # audit events below a signed checkpoint were pruned
CHAIN_RESTORED = "chain_restored"  # the database was restored from a backup
DAEMON_STARTED = "daemon_started"  # a daemon started (with a snapshot of the settings)
DAEMON_STOPPED = "daemon_stopped"  # a daemon stopped gracefully
DAEMON_LEADING = "daemon_leading"  # a daemon took the leader lease
SOURCE_FILE_CHANGED = "source_file_changed"  # a measured file changed (old, new SHA-256)
ROWS_BASELINE = "rows_baseline"  # rows older than row digests bound to the chain
# An outbox row's delivery attempt (issue 20): channel, attempt, response status; no body
NOTIFICATION_DELIVERED = "notification_delivered"  # a channel accepted a notification
NOTIFICATION_FAILED = "notification_failed"  # an attempt failed (retried, or dead after N)
# A monitor's row in ``monitors`` was written (each event records the rows' digests)
MONITOR_ADDED = "monitor_added"  # a monitor appeared (in the config, or its first run)
MONITOR_CHANGED = "monitor_changed"  # a monitor's settings or schedule changed
MONITOR_PAUSED = "monitor_paused"  # a person paused a monitor (it is not run until resumed)
MONITOR_RESUMED = "monitor_resumed"  # a person resumed a paused monitor
MONITOR_RETIRED = "monitor_retired"  # a monitor left the config (its history stays)

# The events that write rows of the ``monitors`` table (``store.monitors.put_monitors``).
MONITOR_EVENTS: tuple[str, ...] = (
    MONITOR_ADDED,
    MONITOR_CHANGED,
    MONITOR_PAUSED,
    MONITOR_RESUMED,
    MONITOR_RETIRED,
)

EVENT_TYPES = frozenset(
    {
        CYCLE_COMPLETED,
        CYCLE_FAILED,
        CYCLE_MISSED,
        ALERT_RAISED,
        ALERT_ACKNOWLEDGED,
        ALERT_RESOLVED,
        CONFIG_CHANGED,
        KEYS_ROTATED,
        KEY_ROTATION_FINISHED,
        RETENTION_APPLIED,
        BACKUP_MADE,
        BACKUP_FAILED,
        CHAIN_STARTED,
        CHAIN_PRUNED,
        CHAIN_RESTORED,
        DAEMON_STARTED,
        DAEMON_STOPPED,
        DAEMON_LEADING,
        SOURCE_FILE_CHANGED,
        ROWS_BASELINE,
        NOTIFICATION_DELIVERED,
        NOTIFICATION_FAILED,
        *MONITOR_EVENTS,
    }
)


def audit_json(rec: AuditRecord) -> dict[str, Any]:
    """Return one audit record as a plain dict (the ``audit_history`` shape plus chain)."""
    return {
        "seq": rec.seq,
        "timestamp": rec.ts,
        "event_type": rec.event_type,
        "actor": rec.actor,
        "details": dict(rec.payload),
        "prev_hash": rec.prev_hash,
        "hash": rec.hash,
    }


def where(a: Anomaly) -> str:
    """Where an anomaly is: its seq, and for a stored row its table and id."""
    if a.table is None:
        return f"seq {a.seq}"
    return f"row {a.table} id {a.id}" + ("" if a.seq is None else f" (seq {a.seq})")
