"""request ids: the API call that published each revision, carried to the agents' logs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("revisions") as batch:
        batch.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("load_balancers") as batch:
        batch.add_column(sa.Column("revision_request_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("load_balancers") as batch:
        batch.drop_column("revision_request_id")
    with op.batch_alter_table("revisions") as batch:
        batch.drop_column("request_id")
