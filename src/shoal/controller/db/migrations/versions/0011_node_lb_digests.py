"""node_lb_digests: a node's table digests as one row per (node, load balancer) instead of
one JSON value per node, so that a report writes only the load balancers it changed; per-LB
and per-backend traffic move out of nodes.counters into their own columns (nodes.lb_traffic,
nodes.backend_traffic), written only by the reports that carry them.

Upgrade moves every node's JSON into the rows and columns, so report_seq stays valid and an
agent's next delta applies on top of what it had. Downgrade folds them back.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 19:20:00
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_TRAFFIC = {"load_balancers": "lb_traffic", "backends": "backend_traffic"}


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    op.create_table(
        "node_lb_digests",
        sa.Column(
            "node_id",
            sa.String(36),
            sa.ForeignKey("nodes.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("load_balancer_id", sa.String(36), primary_key=True),
        sa.Column("digests", sa.JSON(), nullable=False),
    )
    op.create_index("ix_node_lb_digests_lb", "node_lb_digests", ["load_balancer_id"])
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("lb_traffic", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("backend_traffic", sa.JSON(), nullable=True))
    conn = op.get_bind()
    nodes = sa.table(
        "nodes",
        sa.column("id", sa.String),
        sa.column("counters", sa.JSON),
        sa.column("digests", sa.JSON),
        sa.column("lb_traffic", sa.JSON),
        sa.column("backend_traffic", sa.JSON),
    )
    rows = sa.table(
        "node_lb_digests",
        sa.column("node_id", sa.String),
        sa.column("load_balancer_id", sa.String),
        sa.column("digests", sa.JSON),
    )
    for node_id, counters, digests in conn.execute(
        sa.select(nodes.c.id, nodes.c.counters, nodes.c.digests)
    ).all():
        digests = _json(digests) or {}
        if digests:
            conn.execute(
                sa.insert(rows),
                [
                    {"node_id": node_id, "load_balancer_id": str(k)[:36], "digests": v}
                    for k, v in digests.items()
                ],
            )
        counters = dict(_json(counters) or {})
        moved = {col: counters.pop(key, None) for key, col in _TRAFFIC.items()}
        conn.execute(
            sa.update(nodes).where(nodes.c.id == node_id).values(counters=counters, **moved)
        )
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("digests")


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("digests", sa.JSON(), nullable=False, server_default="{}"))
    conn = op.get_bind()
    nodes = sa.table(
        "nodes",
        sa.column("id", sa.String),
        sa.column("counters", sa.JSON),
        sa.column("digests", sa.JSON),
        sa.column("lb_traffic", sa.JSON),
        sa.column("backend_traffic", sa.JSON),
    )
    rows = sa.table(
        "node_lb_digests",
        sa.column("node_id", sa.String),
        sa.column("load_balancer_id", sa.String),
        sa.column("digests", sa.JSON),
    )
    per_node: dict[str, dict[str, Any]] = {}
    for node_id, lb_id, digests in conn.execute(
        sa.select(rows.c.node_id, rows.c.load_balancer_id, rows.c.digests)
    ).all():
        per_node.setdefault(node_id, {})[lb_id] = _json(digests)
    for node_id, counters, lb_traffic, backend_traffic in conn.execute(
        sa.select(nodes.c.id, nodes.c.counters, nodes.c.lb_traffic, nodes.c.backend_traffic)
    ).all():
        counters = dict(_json(counters) or {})
        for key, value in (("load_balancers", lb_traffic), ("backends", backend_traffic)):
            if (value := _json(value)) is not None:
                counters[key] = value
        conn.execute(
            sa.update(nodes)
            .where(nodes.c.id == node_id)
            .values(counters=counters, digests=per_node.get(node_id, {}))
        )
    op.drop_index("ix_node_lb_digests_lb", table_name="node_lb_digests")
    op.drop_table("node_lb_digests")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("backend_traffic")
        batch.drop_column("lb_traffic")
