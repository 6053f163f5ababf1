"""Chained checkpoints: ``checkpoints.prev``, the digest of the checkpoint signed before.

Each checkpoint signed from now on also signs the SHA-256 of the previous checkpoint's
signed message (``fairlens_monitor.audit.checkpoints.digest``), so the checkpoints form a hash
chain and ``verify`` checks one Ed25519 signature for the newest plus a hash for each of the
rest. Older rows keep ``prev`` NULL and are verified by their own signatures, as before.
A plain ``ADD COLUMN`` on both back ends: the table is not rebuilt, so its append-only
triggers and ``v_checkpoints`` stay as they are.

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("checkpoints", sa.Column("prev", sa.String(64), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE checkpoints DROP COLUMN prev")
