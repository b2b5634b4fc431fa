"""vip_pools.free_from: where the search for a pool's lowest free VIP starts, and an index
of every load balancer's VIP address to look candidates up in, so a create costs the same
with 10 or 10,000 load balancers (it read every VIP before)

0 on upgrade: the first allocation in each pool walks up from its first host once.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("vip_pools") as batch:
        batch.add_column(sa.Column("free_from", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_load_balancers_vip_address", "load_balancers", ["vip_address"])


def downgrade() -> None:
    op.drop_index("ix_load_balancers_vip_address", "load_balancers")
    with op.batch_alter_table("vip_pools") as batch:
        batch.drop_column("free_from")
