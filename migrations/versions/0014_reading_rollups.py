"""The hourly rollup of readings: ``reading_rollups`` and the auditors' ``v_reading_rollups``.

One row per monitor, UTC hour and scenario with the hour's counts, sums, minima and maxima
(DIR, gap, drift statistic, the headline and reference counts, verdicts, alert flags), so the
trend page reads a year of one-minute readings as ~17,500 rows instead of 525,600. Every
cycle folds its readings into their rows in its own transaction (``store.rollup``) and its
``cycle_completed`` event records each row's digest after the update (``rowforms``).

The upgrade fills the table from the readings already stored, in one ``INSERT … SELECT …
GROUP BY`` (the same aggregates ``store.rollup.fold`` computes); the first writable start
after it (``db upgrade`` itself, or ``run``/``once``) records those rows in one
``rows_baseline`` event (``rowstore.baseline_tables``). The monitor of every existing row is
``default``. The downgrade drops the view and the table (the readings are untouched).

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fairlens_monitor.store.models import UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The hour since 1970-01-01 UTC of a reading's measured_at, per back end (SQLite keeps UTC
# text 'YYYY-MM-DD HH:MM:SS.ffffff'; PostgreSQL a timestamptz). SQLite's date functions round
# to the millisecond (23:59:59.9996 would be the next hour), so the fraction is cut first.
BUCKET = {
    "sqlite": "CAST(strftime('%s', substr(measured_at, 1, 19)) AS INTEGER) / 3600",
    "postgresql": "CAST(floor(extract(epoch FROM measured_at) / 3600) AS BIGINT)",
}
BUCKET_START = {
    "sqlite": "datetime(bucket * 3600, 'unixepoch')",
    "postgresql": "to_timestamp(bucket * 3600.0)",  # no int4 overflow in 2038
}

COLUMNS = (
    "monitor, scenario, bucket, first_at, last_at, first_reading_id, last_reading_id, "
    "readings, dir_n, dir_sum, dir_min, dir_max, gap_n, gap_sum, gap_min, gap_max, drift_max, "
    "group_approved, group_applicants, reference_approved, reference_applicants, verdict_ok, "
    "verdict_adverse, verdict_inconclusive, verdict_no_data, alerts, dir_alerts, gap_alerts, "
    "drift_alerts"
)


def _count(condition: str) -> str:
    return f"sum(CASE WHEN {condition} THEN 1 ELSE 0 END)"


def backfill_sql(dialect: str) -> str:
    """The ``INSERT … SELECT`` that computes every rollup row from the stored readings."""
    return (
        f"INSERT INTO reading_rollups ({COLUMNS}) "  # noqa: S608 (no outside text)
        "SELECT 'default', scenario, bucket, min(measured_at), max(measured_at), min(id), "
        "max(id), count(*), count(dir), coalesce(sum(dir), 0.0), min(dir), max(dir), "
        "count(gap), coalesce(sum(gap), 0.0), min(gap), max(gap), max(drift_statistic), "
        "sum(group_approved), sum(group_applicants), sum(reference_approved), "
        "sum(reference_applicants), "
        + ", ".join(
            _count(c)
            for c in (
                "verdict = 'ok'",
                "verdict = 'adverse'",
                "verdict = 'inconclusive'",
                "verdict = 'no_data'",
                "verdict = 'adverse' OR (verdict IS NULL AND dir_alert)",
                "dir_alert",
                "gap_alert",
                "drift_alert",
            )
        )
        + f" FROM (SELECT *, {BUCKET[dialect]} AS bucket FROM readings) r "  # noqa: S608
        "GROUP BY bucket, scenario ORDER BY bucket, scenario"
    )


def view_sql(dialect: str) -> str:
    """``v_reading_rollups``: every column, the hour's start and the means."""
    return (
        "CREATE VIEW v_reading_rollups AS SELECT id AS rollup_id, monitor, scenario, bucket, "  # noqa: S608
        f"{BUCKET_START[dialect]} AS bucket_start, first_at, last_at, first_reading_id, "
        "last_reading_id, readings, dir_n, dir_sum, "
        "CASE WHEN dir_n > 0 THEN dir_sum / dir_n END AS dir_mean, dir_min, dir_max, gap_n, "
        "gap_sum, CASE WHEN gap_n > 0 THEN gap_sum / gap_n END AS gap_mean, gap_min, gap_max, "
        "drift_max, group_approved, group_applicants, reference_approved, "
        "reference_applicants, verdict_ok, verdict_adverse, verdict_inconclusive, "
        "verdict_no_data, alerts, dir_alerts, gap_alerts, drift_alerts FROM reading_rollups"
    )


def upgrade() -> None:
    """Create the table and its view, and fill it from the stored readings."""
    dialect = op.get_bind().dialect.name
    op.create_table(
        "reading_rollups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("monitor", sa.String(length=64), server_default="default", nullable=False),
        sa.Column("scenario", sa.String(length=16), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("first_at", UTCDateTime(), nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=False),
        sa.Column("first_reading_id", sa.Integer(), nullable=False),
        sa.Column("last_reading_id", sa.Integer(), nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.Column("dir_n", sa.Integer(), nullable=False),
        sa.Column("dir_sum", sa.Float(), nullable=False),
        sa.Column("dir_min", sa.Float(), nullable=True),
        sa.Column("dir_max", sa.Float(), nullable=True),
        sa.Column("gap_n", sa.Integer(), nullable=False),
        sa.Column("gap_sum", sa.Float(), nullable=False),
        sa.Column("gap_min", sa.Float(), nullable=True),
        sa.Column("gap_max", sa.Float(), nullable=True),
        sa.Column("drift_max", sa.Float(), nullable=True),
        sa.Column("group_approved", sa.BigInteger(), nullable=False),
        sa.Column("group_applicants", sa.BigInteger(), nullable=False),
        sa.Column("reference_approved", sa.BigInteger(), nullable=False),
        sa.Column("reference_applicants", sa.BigInteger(), nullable=False),
        sa.Column("verdict_ok", sa.Integer(), nullable=False),
        sa.Column("verdict_adverse", sa.Integer(), nullable=False),
        sa.Column("verdict_inconclusive", sa.Integer(), nullable=False),
        sa.Column("verdict_no_data", sa.Integer(), nullable=False),
        sa.Column("alerts", sa.Integer(), nullable=False),
        sa.Column("dir_alerts", sa.Integer(), nullable=False),
        sa.Column("gap_alerts", sa.Integer(), nullable=False),
        sa.Column("drift_alerts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reading_rollups")),
        sa.UniqueConstraint(
            "monitor", "bucket", "scenario", name=op.f("uq_reading_rollups_monitor")
        ),
    )
    op.execute(backfill_sql(dialect))
    op.execute(view_sql(dialect))


def downgrade() -> None:
    """Drop the view and the table."""
    op.execute("DROP VIEW v_reading_rollups")
    op.drop_table("reading_rollups")
