"""Many monitors in one store: a ``monitors`` table and a ``monitor`` column on every row.

One database now holds a lender's whole model inventory. Each monitor (a named decision
stream with its own source, measurement, thresholds and schedule; ``config.monitors``) has
a row in ``monitors`` (when it was created, retired or paused and by whom, its schedule as
configured, the expected gap between its runs, its config hash), and every ``runs``,
``readings``, ``group_results``, ``alerts`` and ``source_files`` row names its monitor in a
``monitor`` column (``reading_rollups`` has had one since 0014). Existing rows become monitor
``default`` (the column's server default: one ``ALTER TABLE … ADD COLUMN`` per table, no
row rewrite on PostgreSQL ≥ 11), and the ``default`` row of ``monitors`` is inserted when the
database holds runs; the first writable start records its digest in a ``rows_baseline``
event (``rowstore.baseline_tables``), as 0014 did for the rollup. (A database upgraded again
after a downgrade gets its monitor rows back from the chain instead: see the downgrade.)

Indexes serve what a monitor's cycle reads, each one step down an index whatever the other
monitors wrote: its newest ``ok`` run (``runs (monitor, status, id)``), its readings in id
order for the drift chart, the page and ``v_monitor_status`` (``readings (monitor, id)``),
its open alert episodes (``alerts (monitor, state)``) and its newest record of each decision
file (``source_files (monitor, path, id)``).

Every auditor view gains ``monitor`` as its last column (on PostgreSQL ``CREATE OR REPLACE
VIEW`` appends it and keeps the grants; SQLite drops and creates the view):
``v_audit_trail.monitor`` is the event payload's ``monitor`` (NULL for service events such as
``daemon_started`` or ``rows_baseline``). ``v_checkpoints`` gets none: a signed checkpoint
covers the one chain of every monitor. The new ``v_monitor_status`` is the inventory, one
row per monitor:

- ``state``: ``retired`` (``retired_at`` set), else ``paused``, else ``active``;
- ``last_reading_at``, ``verdict``, ``dir``: of the monitor's newest monitored reading;
- ``open_alerts``: its alert episodes open or acknowledged;
- ``last_ok_run_at``: when its newest successful run finished;
- ``stale``: an active monitor with no successful run within ``interval_seconds`` plus a
  grace of ``max(60 s, interval / 10)`` (a run's own duration, a scheduler's jitter, a lease
  handover) before *now* — true also when it never ran successfully; false for a paused or
  retired monitor; NULL when its interval is unknown. *Now* is taken by the database: on
  PostgreSQL ``now()``, the start of the reading transaction (so a long ``REPEATABLE READ``
  snapshot is judged at the moment it sees); on SQLite ``julianday('now')``, fixed for the
  whole statement. Both are UTC.

Downgrade: refused while rows of any monitor but ``default`` exist (the single-monitor schema
would merge their cycle indexes, drift histories and alert episodes into one; restore a
backup taken before the upgrade, or remove the other monitors' rows first). Otherwise the
views are put back as 0014 left them (on PostgreSQL dropped and created: re-run
``docs/sql/postgres_roles.sql``), the indexes, columns and the ``monitors`` table dropped.
The ``monitors`` rows are not lost with it: every monitor event carries its rows' values,
and upgrading again puts back the newest recorded row of each monitor, under its recorded
id, so ``verify`` finds them as the chain recorded them.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from fairlens_monitor.store.models import UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONITOR_TABLES = ("runs", "readings", "group_results", "alerts", "source_files")
INDEXES = (
    ("ix_runs_monitor_status_id", "runs", ("monitor", "status", "id")),
    ("ix_readings_monitor_id", "readings", ("monitor", "id")),
    ("ix_alerts_monitor_state", "alerts", ("monitor", "state")),
    ("ix_source_files_monitor_path_id", "source_files", ("monitor", "path", "id")),
)

# The bodies 0014 left (a released revision is frozen): restored on downgrade, and the
# ones upgraded, with ``monitor`` appended.
BEFORE = {
    "v_runs": """
        SELECT r.id AS run_id, r.cycle_index, r.actor, r.scheduled_for, r.started_at,
               r.finished_at, r.status, r.error, r.config_hash, r.code_version,
               (SELECT count(*) FROM readings x WHERE x.run_id = r.id) AS readings
        FROM runs r""",
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
    "v_group_results": """
        SELECT x.reading_id, g.run_id, g.measured_at, g.scenario, g.protected_attribute,
               x.label AS group_label, x.role, x.applicants, x.approved, x.rate, x.share,
               x.impact_ratio, x.ci_low, x.ci_high, x.p_value, x.p_adjusted, x.test,
               x.shortfall, x.verdict
        FROM group_results x JOIN readings g ON g.id = x.reading_id""",
    "v_source_files": """
        SELECT f.id AS file_id, f.reading_id, f.measured_at, f.path, f.sha256, f.size_bytes,
               f.mtime_ns, f.rows, f.decisions, g.run_id, g.source
        FROM source_files f LEFT JOIN readings g ON g.id = f.reading_id""",
}
# the alias of the table each view's ``monitor`` comes from
MONITOR_OF = {
    "v_runs": "r",
    "v_fairness_history": "g",
    "v_alerts": "a",
    "v_group_results": "x",
    "v_source_files": "f",
}
TRAIL = {  # v_audit_trail as 0013 left it, per back end
    "sqlite": """
        SELECT e.seq, e.ts, e.event_type, e.actor, e.payload, e.prev_hash, e.hash
        FROM audit_events e""",
    "postgresql": """
        SELECT e.seq, e.ts, e.event_type, e.actor, fairlens_event_payload(e.canonical) AS payload,
               e.prev_hash, e.hash
        FROM audit_events e""",
}
TRAIL_MONITOR = {  # the payload's "monitor" as text (NULL when absent or not text)
    "sqlite": "CASE WHEN json_type(e.payload, '$.monitor') = 'text' "
    "THEN json_extract(e.payload, '$.monitor') END",
    "postgresql": "CASE WHEN json_typeof(fairlens_event_payload(e.canonical) -> 'monitor') "
    "= 'string' THEN fairlens_event_payload(e.canonical) ->> 'monitor' END",
}

GRACE_SECONDS = 60.0  # the least grace; a tenth of a longer interval otherwise
# seconds from the newest ok run's end to now, per back end
AGE = {
    "sqlite": "(julianday('now') - julianday(s.last_ok_run_at)) * 86400.0",
    "postgresql": "extract(epoch FROM (now() - s.last_ok_run_at))",
}
FALSE = {"sqlite": "0", "postgresql": "FALSE"}
TRUE = {"sqlite": "1", "postgresql": "TRUE"}


def status_sql(dialect: str) -> str:
    """``v_monitor_status``: one row per monitor (see the module docstring)."""
    newest_monitored = (
        "FROM readings g WHERE g.monitor = m.name AND g.scenario = 'monitored' "
        "ORDER BY g.id DESC LIMIT 1"
    )
    inner = (
        "SELECT m.name AS monitor, "  # noqa: S608 (no outside text)
        "CASE WHEN m.retired_at IS NOT NULL THEN 'retired' WHEN m.paused THEN 'paused' "
        "ELSE 'active' END AS state, "
        f"(SELECT g.measured_at {newest_monitored}) AS last_reading_at, "
        f"(SELECT g.verdict {newest_monitored}) AS verdict, "
        f"(SELECT g.dir {newest_monitored}) AS dir, "
        "(SELECT count(*) FROM alerts a WHERE a.monitor = m.name "
        "AND a.state IN ('open', 'acknowledged')) AS open_alerts, "
        "(SELECT r.finished_at FROM runs r WHERE r.monitor = m.name AND r.status = 'ok' "
        "ORDER BY r.id DESC LIMIT 1) AS last_ok_run_at, "
        "m.interval_seconds "
        "FROM monitors m"
    )
    grace = f"CASE WHEN s.interval_seconds / 10 > {GRACE_SECONDS} THEN s.interval_seconds / 10 "
    grace += f"ELSE {GRACE_SECONDS} END"
    stale = (
        f"CASE WHEN s.state <> 'active' THEN {FALSE[dialect]} "
        "WHEN s.interval_seconds IS NULL THEN NULL "
        f"WHEN s.last_ok_run_at IS NULL THEN {TRUE[dialect]} "
        f"WHEN {AGE[dialect]} > s.interval_seconds + {grace} THEN {TRUE[dialect]} "
        f"ELSE {FALSE[dialect]} END"
    )
    return (
        "CREATE VIEW v_monitor_status AS SELECT s.monitor, s.state, s.last_reading_at, "  # noqa: S608
        "s.verdict, s.dir, s.open_alerts, s.last_ok_run_at, "
        f"{stale} AS stale FROM ({inner}) s"
    )


def with_monitor(name: str, body: str) -> str:
    """A view's body with its table's ``monitor`` appended to the select list."""
    head, _, tail = body.rpartition("\n        FROM ")
    return f"{head}, {MONITOR_OF[name]}.monitor\n        FROM {tail}"


def _create_monitors() -> None:
    op.create_table(
        "monitors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
        sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("paused_at", UTCDateTime(), nullable=True),
        sa.Column("paused_by", sa.String(length=64), nullable=True),
        sa.Column("schedule", sa.String(length=128), nullable=True),
        sa.Column("interval_seconds", sa.Float(), nullable=True),
        sa.Column("config_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitors")),
        sa.UniqueConstraint("name", name=op.f("uq_monitors_name")),
    )


MONITOR_EVENTS = (
    "monitor_added",
    "monitor_changed",
    "monitor_paused",
    "monitor_resumed",
    "monitor_retired",
)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
ROW_FIELDS = {
    "name": sa.String(),
    "created_at": UTCDateTime(),
    "retired_at": UTCDateTime(),
    "paused": sa.Boolean(),
    "paused_at": UTCDateTime(),
    "paused_by": sa.String(),
    "schedule": sa.String(),
    "interval_seconds": sa.Float(),
    "config_hash": sa.String(),
}


def _restore_monitors(dialect: str) -> set[str]:
    """Put back the monitor rows the chain records (a database downgraded below 0015 and
    upgraded again): each monitor event carries its rows' values (``rows``) beside their
    ids (``row_digests``), so the newest one of each monitor is inserted exactly as recorded
    and ``verify`` finds it unchanged. Returns the names put back (none on a first upgrade)."""
    bind = op.get_bind()
    kinds = ", ".join(f"'{k}'" for k in MONITOR_EVENTS)
    newest: dict[str, tuple[int, dict[str, Any]]] = {}
    for (canonical,) in bind.execute(
        sa.text(f"SELECT canonical FROM audit_events WHERE event_type IN ({kinds}) ORDER BY seq")  # noqa: S608
    ):
        try:
            payload = json.loads(canonical)["payload"]
            ids = [int(i) for i, _ in payload["row_digests"]["monitors"]]
            rows = payload["rows"]
            pairs = list(zip(ids, rows, strict=True))
        except (ValueError, TypeError, KeyError):
            continue  # not a row this version wrote (verify reports a damaged event)
        for row_id, row in pairs:
            if isinstance(row, dict) and isinstance(row.get("name"), str):
                newest[row["name"]] = (row_id, row)
    if not newest:
        return set()
    values = []
    for row_id, row in newest.values():
        value = {"id": row_id}
        for name, type_ in ROW_FIELDS.items():
            v = row.get(name)
            if isinstance(type_, UTCDateTime) and isinstance(v, str):
                v = datetime.strptime(v, TIME_FORMAT).replace(tzinfo=UTC)
            value[name] = bool(v) if name == "paused" else v
        values.append(value)
    table = sa.table(
        "monitors",
        sa.column("id", sa.Integer()),
        *(sa.column(n, t) for n, t in ROW_FIELDS.items()),
    )
    op.bulk_insert(table, values)
    if dialect == "postgresql":  # the ids were given: move the sequence past them
        op.execute(
            "SELECT setval(pg_get_serial_sequence('monitors', 'id'), "
            "(SELECT max(id) FROM monitors))"
        )
    return set(newest)


def upgrade() -> None:
    """Add the table, the columns, the indexes and the views; existing rows are ``default``."""
    dialect = op.get_bind().dialect.name
    postgres = dialect == "postgresql"
    _create_monitors()
    for table in MONITOR_TABLES:
        op.add_column(
            table,
            sa.Column("monitor", sa.String(length=64), server_default="default", nullable=False),
        )
    for name, table, columns in INDEXES:
        op.create_index(name, table, list(columns))
    restored = _restore_monitors(dialect)
    if "default" not in restored:  # the default monitor, created when its first run was
        op.execute(
            "INSERT INTO monitors (name, created_at, paused) "
            "SELECT 'default', min(started_at), FALSE FROM runs HAVING count(*) > 0"
        )
    for name, body in BEFORE.items():
        if not postgres:
            op.execute(f"DROP VIEW {name}")
        create = "CREATE OR REPLACE VIEW" if postgres else "CREATE VIEW"
        op.execute(f"{create} {name} AS {with_monitor(name, body)}")
    if not postgres:
        op.execute("DROP VIEW v_audit_trail")
    create = "CREATE OR REPLACE VIEW" if postgres else "CREATE VIEW"
    trail = TRAIL[dialect].replace(
        "e.prev_hash, e.hash\n", f"e.prev_hash, e.hash, {TRAIL_MONITOR[dialect]} AS monitor\n"
    )
    op.execute(f"{create} v_audit_trail AS {trail}")
    op.execute(status_sql(dialect))


def downgrade() -> None:
    """Refuse while other monitors' rows exist; else put the schema back as 0014 left it."""
    bind = op.get_bind()
    dialect = bind.dialect.name
    for table in (*MONITOR_TABLES, "reading_rollups"):
        other = bind.execute(
            sa.text(f"SELECT 1 FROM {table} WHERE monitor <> 'default' LIMIT 1")  # noqa: S608
        ).first()
        if other is not None:
            raise RuntimeError(
                f"cannot downgrade below 0015: table {table} holds rows of monitors other "
                "than 'default', which the single-monitor schema would merge; restore a "
                "backup taken before the upgrade, or delete those monitors' rows first"
            )
    op.execute("DROP VIEW v_monitor_status")
    for name in (*BEFORE, "v_audit_trail"):
        op.execute(f"DROP VIEW {name}")
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    for table in MONITOR_TABLES:
        op.drop_column(table, "monitor")
    op.drop_table("monitors")
    for name, body in BEFORE.items():
        op.execute(f"CREATE VIEW {name} AS {body}")
    op.execute(f"CREATE VIEW v_audit_trail AS {TRAIL[dialect]}")
