"""vip_pools: admin-defined VIP ranges and the projects that may use them

Revision ID: 0005
Revises: 0004_node_credentials
Create Date: 2026-12-01 09:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004_node_credentials"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Empty on upgrade: the controller seeds it from its vip_pools setting at the next start,
    # so existing load balancers keep resolving their pool by name.
    op.create_table(
        "vip_pools",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("name", sa.String(length=255), nullable=False, unique=True),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("network_id", sa.String(length=36), nullable=False),
        sa.Column("cidr", sa.String(length=64), nullable=False, unique=True),
        sa.Column("ip_version", sa.Integer(), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("project_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("vip_pools")
