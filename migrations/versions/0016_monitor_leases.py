"""Per-monitor leadership: a lease per monitor and a registry of the live daemons.

Several daemons may share a PostgreSQL database and split its monitors between them
(``fairlens_monitor.store.monitor_lease``, issue 18). ``monitor_leases`` holds one row per
monitor that a daemon ever led: the holder (NULL once released), an ``epoch`` incremented by
every takeover and checked inside each of that monitor's write transactions (fencing), and
``expires_at`` on the server's clock. ``daemon_registry`` holds one row per daemon, renewed
with its leases, so the daemons know how many share the work (balancing). Both tables are
working state, not history, and are not part of the audit chain (each takeover is:
``daemon_leading`` naming the monitor). The one-row ``leadership`` table (0011) stays: it
elects the daemon that runs the service's own duties. SQLite leaves both tables empty.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fairlens_monitor.store.models import UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the lease and registry tables."""
    op.create_table(
        "monitor_leases",
        sa.Column("monitor", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("monitor", name=op.f("pk_monitor_leases")),
    )
    op.create_table(
        "daemon_registry",
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("holder", name=op.f("pk_daemon_registry")),
    )


def downgrade() -> None:
    """Drop the lease and registry tables."""
    op.drop_table("daemon_registry")
    op.drop_table("monitor_leases")
