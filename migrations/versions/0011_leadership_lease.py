"""The daemons' leadership lease: one row naming the leader, its epoch and its expiry.

Several daemons may share a PostgreSQL database; the one holding an unexpired lease runs
the cycles (``fairlens_monitor.store.lease``). Each takeover increments ``epoch``, and every
write transaction of a leader checks the epoch inside the transaction (a fencing token), so
a leader that was frozen and lost its lease cannot commit. Times are the server's clock
(``expires_at``), never a daemon's. The table holds at most one row (``id = 1``); it is
working state, not history, and is not part of the audit chain (each takeover is:
``daemon_leading``). SQLite databases have one daemon per file and leave it empty.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from fairlens_monitor.store.models import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the one-row lease table."""
    op.create_table(
        "leadership",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("id = 1", name="single_row"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leadership")),
    )


def downgrade() -> None:
    """Drop the lease table."""
    op.drop_table("leadership")
