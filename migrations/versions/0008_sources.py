"""Readings from real decision logs: windows, lineage, empty windows and the files read.

``readings`` gains ``window_start``/``window_end`` and ``lineage`` (JSON: source kind, query
or file pattern, counts digest); its rates and gap may be NULL, which only a ``no_data``
reading (an empty window) uses. ``source_files`` records every decision file read, with its
SHA-256. ``v_fairness_history`` shows the new columns and ``v_source_files`` the files.

On SQLite the readings table is rebuilt (SQLite cannot drop NOT NULL in place; see
``_set_nullable``); on PostgreSQL the columns are altered in place. ``v_fairness_history``
is dropped and created again, so on PostgreSQL re-run ``docs/sql/postgres_roles.sql`` after
upgrading to give the auditor roles back their grant on it and on ``v_source_files``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fairlens_monitor.store.models import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NULLABLE = ("unprivileged_rate", "privileged_rate", "gap")


# The view bodies are written out here (a released revision is frozen): HISTORY_BEFORE is
# what 0007 created, HISTORY_AFTER adds the window and the lineage at the end.
HISTORY_BEFORE = """
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
        FROM readings g"""
HISTORY_AFTER = """
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
        FROM readings g"""
V_SOURCE_FILES = """
        SELECT f.id AS file_id, f.reading_id, f.measured_at, f.path, f.sha256, f.size_bytes,
               f.mtime_ns, f.rows, f.decisions, g.run_id, g.source
        FROM source_files f LEFT JOIN readings g ON g.id = f.reading_id"""


def _sqlite_objects(kind: str, table: str | None = None) -> dict[str, str]:
    rows = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT name, sql FROM sqlite_master WHERE type = :kind AND sql IS NOT NULL "
                "AND (:table IS NULL OR tbl_name = :table) ORDER BY name"
            ),
            {"kind": kind, "table": table},
        )
        .all()
    )
    return {str(name): str(sql) for name, sql in rows}


def _set_nullable(nullable: bool) -> None:
    """Make the rate and gap columns nullable (or not) on either back end.

    SQLite cannot alter a column in place and the readings table is referenced by other
    tables, so it is rebuilt under its own name: copy the rows out, drop the table (foreign
    keys deferred to commit), create it from its stored definition with the constraint
    changed, copy the rows back (which satisfies the deferred checks) and restore its
    indexes and every view, which were set aside first.
    """
    if op.get_bind().dialect.name != "sqlite":
        for name in NULLABLE:
            op.alter_column("readings", name, existing_type=sa.Float(), nullable=nullable)
        return
    views = _sqlite_objects("view")
    indexes = _sqlite_objects("index", "readings")
    ddl = _sqlite_objects("table")["readings"]
    for name in NULLABLE:
        column = re.compile(rf"(\b{name}\s+FLOAT)(\s+NOT NULL)?", re.IGNORECASE)
        ddl, found = column.subn(r"\1" if nullable else r"\1 NOT NULL", ddl)
        if found != 1:
            raise RuntimeError(f"0008: column {name} not found in the readings table")
    for name in views:
        op.execute(f"DROP VIEW {name}")
    op.execute("PRAGMA defer_foreign_keys = ON")
    op.execute("CREATE TABLE _readings_copy AS SELECT * FROM readings")
    op.execute("DROP TABLE readings")
    op.execute(ddl)
    op.execute("INSERT INTO readings SELECT * FROM _readings_copy")
    op.execute("DROP TABLE _readings_copy")
    for sql in indexes.values():
        op.execute(sql)
    for sql in views.values():
        op.execute(sql)


def upgrade() -> None:
    _set_nullable(True)
    op.execute("DROP VIEW v_fairness_history")
    for column in (
        sa.Column("window_start", UTCDateTime(), nullable=True),
        sa.Column("window_end", UTCDateTime(), nullable=True),
        sa.Column("lineage", sa.JSON(), nullable=True),
    ):
        op.add_column("readings", column)
    op.execute(f"CREATE VIEW v_fairness_history AS {HISTORY_AFTER}")
    op.create_table(
        "source_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reading_id", sa.Integer(), nullable=True),
        sa.Column("measured_at", UTCDateTime(), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("decisions", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["reading_id"], ["readings.id"], name=op.f("fk_source_files_reading_id_readings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_files")),
    )
    op.create_index(op.f("ix_source_files_reading_id"), "source_files", ["reading_id"])
    op.create_index(op.f("ix_source_files_path"), "source_files", ["path"])
    op.execute(f"CREATE VIEW v_source_files AS {V_SOURCE_FILES}")


def downgrade() -> None:
    empty = (
        op.get_bind()
        .execute(
            sa.text("SELECT count(*) FROM readings WHERE unprivileged_rate IS NULL OR gap IS NULL")
        )
        .scalar()
    )
    if empty:
        raise RuntimeError(
            f"{empty} no_data readings have no rates; revision 0007 cannot "
            "hold them (delete them first, or stay on 0008)"
        )
    op.execute("DROP VIEW v_source_files")
    op.drop_index(op.f("ix_source_files_path"), table_name="source_files")
    op.drop_index(op.f("ix_source_files_reading_id"), table_name="source_files")
    op.drop_table("source_files")
    op.execute("DROP VIEW v_fairness_history")
    for name in ("lineage", "window_end", "window_start"):  # SQLite >= 3.35 and PostgreSQL
        op.execute(f"ALTER TABLE readings DROP COLUMN {name}")
    op.execute(f"CREATE VIEW v_fairness_history AS {HISTORY_BEFORE}")
    _set_nullable(False)
