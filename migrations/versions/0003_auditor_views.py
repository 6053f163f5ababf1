"""Views for auditors: stable names and units over the raw tables.

Documented column by column in docs/AUDITORS.md. Plain SQL only, so the same views work on
SQLite and PostgreSQL. The alert token is deliberately not in ``v_alerts``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = {
    "v_runs": """
        SELECT r.id AS run_id, r.cycle_index, r.actor, r.scheduled_for, r.started_at,
               r.finished_at, r.status, r.error, r.config_hash, r.code_version,
               (SELECT count(*) FROM readings x WHERE x.run_id = r.id) AS readings
        FROM runs r""",
    "v_fairness_history": """
        SELECT g.id AS reading_id, g.run_id, g.measured_at, g.scenario, g.source,
               g.drift_level, g.n_samples, g.seed, g.protected_attribute,
               g.unprivileged_group, g.privileged_group,
               g.unprivileged_count AS unprivileged_applicants, g.unprivileged_approved,
               g.privileged_count AS privileged_applicants, g.privileged_approved,
               g.unprivileged_rate, g.privileged_rate, g.dir, g.dir_reason, g.dir_threshold,
               g.dir_alert, g.gap, g.gap_threshold, g.gap_alert, g.config_hash,
               g.code_version
        FROM readings g""",
    "v_alerts": """
        SELECT a.id AS alert_id, a.created_at, a.kind, a.state, a.dir, a.key_id, a.run_id,
               a.reading_id, g.scenario, g.dir_threshold,
               g.unprivileged_group, g.unprivileged_count AS unprivileged_applicants,
               g.unprivileged_approved, g.privileged_group,
               g.privileged_count AS privileged_applicants, g.privileged_approved, g.gap
        FROM alerts a JOIN readings g ON g.id = a.reading_id""",
    "v_audit_trail": """
        SELECT e.seq, e.ts, e.event_type, e.actor, e.payload, e.prev_hash, e.hash
        FROM audit_events e""",
    "v_checkpoints": """
        SELECT c.seq, c.head_hash, c.ts, c.key_id, c.signature FROM checkpoints c""",
}


def upgrade() -> None:
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW {name}")
