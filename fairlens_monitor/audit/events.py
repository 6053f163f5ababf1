"""Audit event records as plain data: the JSON shape of one record.

simulate → measure → detect → alert → **log**. The ``audit`` command, the cycle's JSON and
the examiner's export show a record in this one shape (the ``audit_history`` fields plus the
chain links).
"""

from __future__ import annotations

from typing import Any

from fairlens_monitor.audit.chain import AuditRecord


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
