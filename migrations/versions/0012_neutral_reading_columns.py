"""Readings name their headline columns as the measurement does: the group and the reference.

The original two-group API's names (``unprivileged_group``, ``privileged_count``, ...) are
renamed in place to ``group_label``, ``reference_label``, ``group_applicants``,
``group_approved``, ``reference_applicants``, ``reference_approved``, ``group_rate`` and
``reference_rate`` — the vocabulary of ``group_results`` (``label``, ``applicants``,
``approved``, ``rate``). Values, types, constraints and indexes are unchanged.

``v_fairness_history`` and ``v_alerts`` keep every column they had, in the same order and
under the same name (``unprivileged_applicants`` etc., now aliases of the new columns), so an
auditor's existing SQL keeps working; the neutral names are appended at the end.

A plain ``ALTER TABLE ... RENAME COLUMN`` on both back ends (SQLite >= 3.25): a batch rebuild
would copy the table that ``group_results``, ``alerts`` and ``source_files`` reference for no
gain. On SQLite the two views are dropped first and created again; on PostgreSQL they are
replaced in place (``CREATE OR REPLACE VIEW`` may append columns), so the auditor roles keep
their grants. A downgrade drops and recreates them: on PostgreSQL re-run
``docs/sql/postgres_roles.sql`` after it.

Rows are bound to the audit chain by digests over their columns by name: row form 2
(``fairlens_monitor.audit.rowforms``) uses the new names, and readings recorded under form 1
are still checked under their original names.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# old name → new name, in table order
RENAMES: tuple[tuple[str, str], ...] = (
    ("unprivileged_group", "group_label"),
    ("privileged_group", "reference_label"),
    ("unprivileged_count", "group_applicants"),
    ("unprivileged_approved", "group_approved"),
    ("privileged_count", "reference_applicants"),
    ("privileged_approved", "reference_approved"),
    ("unprivileged_rate", "group_rate"),
    ("privileged_rate", "reference_rate"),
)

# The view bodies are written out (a released revision is frozen). AFTER: every column the
# views had, same order and names, then the neutral names.
AFTER = {
    "v_fairness_history": """
        SELECT g.id AS reading_id, g.run_id, g.measured_at, g.scenario, g.source,
               g.drift_level, g.n_samples, g.seed, g.protected_attribute,
               g.group_label AS unprivileged_group, g.reference_label AS privileged_group,
               g.group_applicants AS unprivileged_applicants,
               g.group_approved AS unprivileged_approved,
               g.reference_applicants AS privileged_applicants,
               g.reference_approved AS privileged_approved,
               g.group_rate AS unprivileged_rate, g.reference_rate AS privileged_rate,
               g.dir, g.dir_reason, g.dir_threshold,
               g.dir_alert, g.gap, g.gap_threshold, g.gap_alert, g.config_hash,
               g.code_version, g.verdict, g.verdict_reason, g.dir_ci_low, g.dir_ci_high,
               g.p_value, g.p_adjusted, g.test, g.shortfall, g.alpha, g.confidence,
               g.min_group_size, g.min_group_share, g.reference_mode, g.groups_compared,
               g.groups_excluded, g.label_column, g.dp_difference, g.dp_ratio,
               g.eop_difference, g.eodds_difference, g.eodds_ratio, g.drift_statistic,
               g.drift_alert, g.risk_level, g.window_start, g.window_end, g.lineage,
               g.group_label, g.reference_label, g.group_applicants, g.group_approved,
               g.reference_applicants, g.reference_approved, g.group_rate, g.reference_rate
        FROM readings g""",
    "v_alerts": """
        SELECT a.id AS alert_id, a.created_at, a.kind, a.state, a.verdict, a.dir, a.key_id,
               a.run_id, a.reading_id, a.last_reading_id, a.clean_streak, a.closed_at,
               g.scenario, g.dir_threshold,
               g.group_label AS unprivileged_group,
               g.group_applicants AS unprivileged_applicants,
               g.group_approved AS unprivileged_approved,
               g.reference_label AS privileged_group,
               g.reference_applicants AS privileged_applicants,
               g.reference_approved AS privileged_approved, g.gap,
               g.p_value, g.dir_ci_low, g.dir_ci_high, g.drift_statistic, g.risk_level,
               g.group_label, g.group_applicants, g.group_approved, g.reference_label,
               g.reference_applicants, g.reference_approved
        FROM alerts a JOIN readings g ON g.id = a.reading_id""",
}
# What 0008 (v_fairness_history) and 0007 (v_alerts) left, restored on downgrade.
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
               g.drift_alert, g.risk_level, g.window_start, g.window_end, g.lineage
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


def _rename(pairs: Sequence[tuple[str, str]]) -> None:
    for old, new in pairs:
        op.execute(f"ALTER TABLE readings RENAME COLUMN {old} TO {new}")


def upgrade() -> None:
    """Rename the columns, then give the two views the neutral names beside the old ones."""
    postgres = op.get_bind().dialect.name == "postgresql"
    if not postgres:  # SQLite would rewrite the views' column references in place
        for name in AFTER:
            op.execute(f"DROP VIEW {name}")
    _rename(RENAMES)
    for name, body in AFTER.items():
        create = "CREATE OR REPLACE VIEW" if postgres else "CREATE VIEW"
        op.execute(f"{create} {name} AS {body}")


def downgrade() -> None:
    """Rename the columns back and restore the views as 0008 left them."""
    for name in AFTER:
        op.execute(f"DROP VIEW {name}")
    _rename([(new, old) for old, new in reversed(RENAMES)])
    for name, body in BEFORE.items():
        op.execute(f"CREATE VIEW {name} AS {body}")
