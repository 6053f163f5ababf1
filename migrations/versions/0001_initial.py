"""Initial schema: runs, readings, alerts and the audit chain.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fairlens_monitor.store.models import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cycle_index", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(32), nullable=False),
        sa.Column("scheduled_for", UTCDateTime(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("code_version", sa.String(32), nullable=False),
        sa.CheckConstraint("status IN ('ok', 'failed')", name=op.f("ck_runs_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index(op.f("ix_runs_started_at"), "runs", ["started_at"])

    op.create_table(
        "readings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("scenario", sa.String(16), nullable=False),
        sa.Column("measured_at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("drift_level", sa.Float(), nullable=True),
        sa.Column("n_samples", sa.Integer(), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("protected_attribute", sa.String(64), nullable=False),
        sa.Column("unprivileged_group", sa.String(64), nullable=False),
        sa.Column("privileged_group", sa.String(64), nullable=False),
        sa.Column("unprivileged_count", sa.Integer(), nullable=False),
        sa.Column("unprivileged_approved", sa.Integer(), nullable=False),
        sa.Column("privileged_count", sa.Integer(), nullable=False),
        sa.Column("privileged_approved", sa.Integer(), nullable=False),
        sa.Column("unprivileged_rate", sa.Float(), nullable=False),
        sa.Column("privileged_rate", sa.Float(), nullable=False),
        sa.Column("dir", sa.Float(), nullable=True),
        sa.Column("dir_reason", sa.String(32), nullable=True),
        sa.Column("gap", sa.Float(), nullable=False),
        sa.Column("dir_threshold", sa.Float(), nullable=False),
        sa.Column("gap_threshold", sa.Float(), nullable=False),
        sa.Column("dir_alert", sa.Boolean(), nullable=False),
        sa.Column("gap_alert", sa.Boolean(), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("code_version", sa.String(32), nullable=False),
        sa.CheckConstraint(
            "scenario IN ('reference', 'monitored')", name=op.f("ck_readings_scenario")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_readings_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readings")),
        sa.UniqueConstraint("run_id", "scenario", name=op.f("uq_readings_run_id")),
    )
    op.create_index(op.f("ix_readings_run_id"), "readings", ["run_id"])
    op.create_index(op.f("ix_readings_measured_at"), "readings", ["measured_at"])

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("reading_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("dir", sa.Float(), nullable=True),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.CheckConstraint(
            "state IN ('open', 'acknowledged', 'resolved')", name=op.f("ck_alerts_state")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_alerts_run_id_runs")),
        sa.ForeignKeyConstraint(
            ["reading_id"], ["readings.id"], name=op.f("fk_alerts_reading_id_readings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("reading_id", name=op.f("uq_alerts_reading_id")),
    )
    op.create_index(op.f("ix_alerts_run_id"), "alerts", ["run_id"])
    op.create_index(op.f("ix_alerts_created_at"), "alerts", ["created_at"])

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("canonical", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_events_seq")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_events_hash")),
    )


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_index(op.f("ix_alerts_created_at"), table_name="alerts")
    op.drop_index(op.f("ix_alerts_run_id"), table_name="alerts")
    op.drop_table("alerts")
    op.drop_index(op.f("ix_readings_measured_at"), table_name="readings")
    op.drop_index(op.f("ix_readings_run_id"), table_name="readings")
    op.drop_table("readings")
    op.drop_index(op.f("ix_runs_started_at"), table_name="runs")
    op.drop_table("runs")
