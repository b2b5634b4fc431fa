"""feed_marks: what the agents' feed last said about the set of live nodes

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 12:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty on upgrade: the first controller to look records the live set (and the agents
    # take one snapshot).
    op.create_table(
        "feed_marks",
        sa.Column("name", sa.String(length=32), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feed_marks")
