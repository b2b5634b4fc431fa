"""node credentials: each node's agent authenticates with a credential bound to its enrolment

Revision ID: 0004_node_credentials
Revises: 0003
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_node_credentials"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_credentials",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("cluster", sa.String(255), nullable=False),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("data_address", sa.String(64), nullable=True),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("previous_hash", sa.String(64), nullable=True),
        sa.Column("previous_until", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("rotated_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_node_credentials_previous_hash", "node_credentials", ["previous_hash"])


def downgrade() -> None:
    op.drop_index("ix_node_credentials_previous_hash", "node_credentials")
    op.drop_table("node_credentials")
