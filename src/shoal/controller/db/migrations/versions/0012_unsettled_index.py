"""ix_load_balancers_unsettled: a partial index of the load balancers that are not ACTIVE,
so that status.refresh_pending (every node report, every background tick) reads the few
that wait for their nodes instead of scanning every load balancer.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 22:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_WHERE = sa.text("provisioning_status != 'ACTIVE'")


def upgrade() -> None:
    op.create_index(
        "ix_load_balancers_unsettled",
        "load_balancers",
        ["id"],
        postgresql_where=_WHERE,
        sqlite_where=_WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_load_balancers_unsettled", table_name="load_balancers")
