"""placement ready_seq: the L4 tier sends an L7 node new flows only once it applied them

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 06:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("placements") as batch:
        batch.add_column(
            sa.Column("ready_seq", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("placements") as batch:
        batch.drop_column("ready_seq")
