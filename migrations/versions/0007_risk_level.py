"""A risk level per reading (low/medium/high from verdict, interval and trend), in the views.

``readings.risk_level`` is NULL on readings recorded before this revision. The views that
show readings are recreated with it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The view bodies are written out here, not derived from 0005's module: a revision is frozen
# once released, so what it creates must not change when another revision's text does.
# BEFORE is what 0005 created (restored on downgrade); AFTER adds ``risk_level`` at the end.
BEFORE = {
    "v_fairness_history": """
        SELECT g.id AS reading_id, g.run_id, g.measured_at, g.scenario, g.source,
               g.drift_level, g.n_samples, g.seed, g.protected_attribute,
               g.unprivileged_group, g.privileged_group,
               g.unprivileged_count AS unprivileged_applicants, g.unprivileged_approved,
               g.privileged_count AS privileged_applicants, g.privileged_approved,
               g.unprivileged_rate, g.privileged_rate, g.dir, g.dir_reason, g.dir_threshold,
               g.dir_alert, g.gap, g.gap_threshold, g.gap_alert, g.config_hash,
               g.code_version, g.verdict, g.verdict_reason, g.dir_ci_low, g.dir_ci_high,
               g.p_value, g.p_adjusted, g.test, g.shortfall, g.alpha, g.confidence,
               g.min_group_size, g.min_group_share, g.reference_mode, g.groups_compared,
               g.groups_excluded, g.label_column, g.dp_difference, g.dp_ratio,
               g.eop_difference, g.eodds_difference, g.eodds_ratio, g.drift_statistic,
               g.drift_alert
        FROM readings g""",
    "v_alerts": """
        SELECT a.id AS alert_id, a.created_at, a.kind, a.state, a.verdict, a.dir, a.key_id,
               a.run_id, a.reading_id, a.last_reading_id, a.clean_streak, a.closed_at,
               g.scenario, g.dir_threshold,
               g.unprivileged_group, g.unprivileged_count AS unprivileged_applicants,
               g.unprivileged_approved, g.privileged_group,
               g.privileged_count AS privileged_applicants, g.privileged_approved, g.gap,
               g.p_value, g.dir_ci_low, g.dir_ci_high, g.drift_statistic
        FROM alerts a JOIN readings g ON g.id = a.reading_id""",
}
AFTER = {
    "v_fairness_history": """
        SELECT g.id AS reading_id, g.run_id, g.measured_at, g.scenario, g.source,
               g.drift_level, g.n_samples, g.seed, g.protected_attribute,
               g.unprivileged_group, g.privileged_group,
               g.unprivileged_count AS unprivileged_applicants, g.unprivileged_approved,
               g.privileged_count AS privileged_applicants, g.privileged_approved,
               g.unprivileged_rate, g.privileged_rate, g.dir, g.dir_reason, g.dir_threshold,
               g.dir_alert, g.gap, g.gap_threshold, g.gap_alert, g.config_hash,
               g.code_version, g.verdict, g.verdict_reason, g.dir_ci_low, g.dir_ci_high,
               g.p_value, g.p_adjusted, g.test, g.shortfall, g.alpha, g.confidence,
               g.min_group_size, g.min_group_share, g.reference_mode, g.groups_compared,
               g.groups_excluded, g.label_column, g.dp_difference, g.dp_ratio,
               g.eop_difference, g.eodds_difference, g.eodds_ratio, g.drift_statistic,
               g.drift_alert, g.risk_level
        FROM readings g""",
    "v_alerts": """
        SELECT a.id AS alert_id, a.created_at, a.kind, a.state, a.verdict, a.dir, a.key_id,
               a.run_id, a.reading_id, a.last_reading_id, a.clean_streak, a.closed_at,
               g.scenario, g.dir_threshold,
               g.unprivileged_group, g.unprivileged_count AS unprivileged_applicants,
               g.unprivileged_approved, g.privileged_group,
               g.privileged_count AS privileged_applicants, g.privileged_approved, g.gap,
               g.p_value, g.dir_ci_low, g.dir_ci_high, g.drift_statistic, g.risk_level
        FROM alerts a JOIN readings g ON g.id = a.reading_id""",
}
# Dropped on downgrade (SQLite cannot rebuild 'readings' under a view using it) and created
# again as 0005 left them.
V_RUNS = """
        SELECT r.id AS run_id, r.cycle_index, r.actor, r.scheduled_for, r.started_at,
               r.finished_at, r.status, r.error, r.config_hash, r.code_version,
               (SELECT count(*) FROM readings x WHERE x.run_id = r.id) AS readings
        FROM runs r"""
V_GROUP_RESULTS = """
        SELECT x.reading_id, g.run_id, g.measured_at, g.scenario, g.protected_attribute,
               x.label AS group_label, x.role, x.applicants, x.approved, x.rate, x.share,
               x.impact_ratio, x.ci_low, x.ci_high, x.p_value, x.p_adjusted, x.test,
               x.shortfall, x.verdict
        FROM group_results x JOIN readings g ON g.id = x.reading_id"""


def upgrade() -> None:
    for name in BEFORE:
        op.execute(f"DROP VIEW {name}")
    with op.batch_alter_table("readings") as batch:
        batch.add_column(sa.Column("risk_level", sa.String(8), nullable=True))
    for name, body in AFTER.items():
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    for name in AFTER:
        op.execute(f"DROP VIEW {name}")
    op.execute("DROP VIEW v_runs")  # SQLite cannot rebuild 'readings' under a view using it
    op.execute("DROP VIEW v_group_results")
    with op.batch_alter_table("readings") as batch:
        batch.drop_column("risk_level")
    for name, body in {
        **BEFORE,
        "v_runs": V_RUNS,
        "v_group_results": V_GROUP_RESULTS,
    }.items():
        op.execute(f"CREATE VIEW {name} AS {body}")
