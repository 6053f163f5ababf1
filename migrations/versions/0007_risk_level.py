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

from fairlens_monitor.store.revisions import load_sibling

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_0005 = load_sibling(__file__, "0005_verdicts_groups_episodes")
BEFORE = {name: _0005.VIEWS[name] for name in ("v_fairness_history", "v_alerts")}
AFTER = {
    "v_fairness_history": BEFORE["v_fairness_history"].replace(
        "g.drift_alert\n        FROM readings g",
        "g.drift_alert, g.risk_level\n        FROM readings g",
    ),
    "v_alerts": BEFORE["v_alerts"].replace(
        "g.drift_statistic\n        FROM alerts a",
        "g.drift_statistic, g.risk_level\n        FROM alerts a",
    ),
}
if AFTER == BEFORE:
    raise RuntimeError("0007 could not extend the 0005 views")


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
        "v_runs": _0005.V_RUNS_0003,
        "v_group_results": _0005.VIEWS["v_group_results"],
    }.items():
        op.execute(f"CREATE VIEW {name} AS {body}")
