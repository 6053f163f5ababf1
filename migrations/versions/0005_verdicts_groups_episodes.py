"""Verdicts, per-group results, ground-truth metrics, drift statistic and alert episodes.

Readings gain the statistics behind their verdict (interval, p-value, shortfall, the
settings they were judged by), the ground-truth metrics and the CUSUM drift statistic; all
are NULL on readings recorded before this revision. ``group_results`` keeps every group of
a reading. Alerts become episodes: one per (reading, kind), with ``dir`` and ``drift`` kinds,
the last reading that kept them open and when they closed. The auditor views are recreated
with the new columns, plus ``v_group_results``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fairlens_monitor.store.models import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READING_COLUMNS: list[tuple[str, sa.types.TypeEngine[object]]] = [
    ("verdict", sa.String(16)),
    ("verdict_reason", sa.Text()),
    ("p_value", sa.Float()),
    ("p_adjusted", sa.Float()),
    ("test", sa.String(8)),
    ("dir_ci_low", sa.Float()),
    ("dir_ci_high", sa.Float()),
    ("shortfall", sa.Float()),
    ("alpha", sa.Float()),
    ("confidence", sa.Float()),
    ("min_group_size", sa.Integer()),
    ("min_group_share", sa.Float()),
    ("reference_mode", sa.String(16)),
    ("groups_compared", sa.Integer()),
    ("groups_excluded", sa.Integer()),
    ("label_column", sa.String(64)),
    ("dp_difference", sa.Float()),
    ("dp_ratio", sa.Float()),
    ("eop_difference", sa.Float()),
    ("eodds_difference", sa.Float()),
    ("eodds_ratio", sa.Float()),
    ("drift_statistic", sa.Float()),
    ("drift_alert", sa.Boolean()),
]

VIEWS = {
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
    "v_group_results": """
        SELECT x.reading_id, g.run_id, g.measured_at, g.scenario, g.protected_attribute,
               x.label AS group_label, x.role, x.applicants, x.approved, x.rate, x.share,
               x.impact_ratio, x.ci_low, x.ci_high, x.p_value, x.p_adjusted, x.test,
               x.shortfall, x.verdict
        FROM group_results x JOIN readings g ON g.id = x.reading_id""",
}

VIEWS_0003 = {  # the bodies this revision replaces, restored on downgrade
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
}


def upgrade() -> None:
    for name in VIEWS_0003:
        op.execute(f"DROP VIEW {name}")
    with op.batch_alter_table("readings") as batch:
        for name, type_ in READING_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    op.create_index(op.f("ix_readings_verdict"), "readings", ["verdict"])
    op.create_table(
        "group_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reading_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("applicants", sa.Integer(), nullable=False),
        sa.Column("approved", sa.Integer(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("impact_ratio", sa.Float(), nullable=True),
        sa.Column("ci_low", sa.Float(), nullable=True),
        sa.Column("ci_high", sa.Float(), nullable=True),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("p_adjusted", sa.Float(), nullable=True),
        sa.Column("test", sa.String(8), nullable=True),
        sa.Column("shortfall", sa.Float(), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.CheckConstraint(
            "role IN ('reference', 'compared', 'excluded')", name=op.f("ck_group_results_role")
        ),
        sa.ForeignKeyConstraint(
            ["reading_id"], ["readings.id"], name=op.f("fk_group_results_reading_id_readings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_results")),
        sa.UniqueConstraint("reading_id", "label", name=op.f("uq_group_results_reading_id")),
    )
    op.create_index(op.f("ix_group_results_reading_id"), "group_results", ["reading_id"])
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint("uq_alerts_reading_id", type_="unique")
        batch.create_unique_constraint("uq_alerts_reading_id", ["reading_id", "kind"])
        batch.create_check_constraint("kind", "kind IN ('dir', 'drift')")
        batch.add_column(sa.Column("verdict", sa.String(16), nullable=True))
        batch.add_column(sa.Column("last_reading_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("clean_streak", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("closed_at", UTCDateTime(), nullable=True))
        batch.create_index(batch.f("ix_alerts_state"), ["state"])
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body}")


V_RUNS_0003 = """
        SELECT r.id AS run_id, r.cycle_index, r.actor, r.scheduled_for, r.started_at,
               r.finished_at, r.status, r.error, r.config_hash, r.code_version,
               (SELECT count(*) FROM readings x WHERE x.run_id = r.id) AS readings
        FROM runs r"""


def downgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW {name}")
    op.execute("DROP VIEW v_runs")  # SQLite cannot rebuild 'readings' under a view using it
    with op.batch_alter_table("alerts") as batch:
        batch.drop_index(batch.f("ix_alerts_state"))
        for column in ("closed_at", "clean_streak", "last_reading_id", "verdict"):
            batch.drop_column(column)
        batch.drop_constraint(op.f("ck_alerts_kind"), type_="check")
        batch.drop_constraint("uq_alerts_reading_id", type_="unique")
        batch.create_unique_constraint("uq_alerts_reading_id", ["reading_id"])
    op.drop_index(op.f("ix_group_results_reading_id"), table_name="group_results")
    op.drop_table("group_results")
    op.drop_index(op.f("ix_readings_verdict"), table_name="readings")
    with op.batch_alter_table("readings") as batch:
        for name, _ in reversed(READING_COLUMNS):
            batch.drop_column(name)
    for name, body in {**VIEWS_0003, "v_runs": V_RUNS_0003}.items():
        op.execute(f"CREATE VIEW {name} AS {body}")
