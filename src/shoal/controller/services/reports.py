"""Storing a node's report: a whole one replaces the node's table digests and errors, a
delta (shoal.wire.report.NodeReport.base) changes only the load balancers it names, so a
report after one change costs that change, not the node's whole state. Either way the node's
stored view ends up what a whole report would have made it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from shoal.controller.db.models import Node, NodeLbError
from shoal.controller.errors import Conflict
from shoal.wire.report import NodeReport

__all__ = ["store_tables"]

_CHUNK = 5000  # ids per IN (...): well under SQLite's and PostgreSQL's parameter limits


def store_tables(session: Session, node: Node, body: NodeReport) -> None:
    """The report's digests and errors into the node's rows (this node's only)."""
    if body.base is not None and body.base != node.report_seq:
        raise Conflict(
            f"report base {body.base} is not the last report stored for node {node.name} "
            f"({'none' if node.report_seq is None else node.report_seq}): send a whole report"
        )
    mine = NodeLbError.node_id == node.id
    if body.base is None:
        node.digests = body.digests
        session.execute(delete(NodeLbError).where(mine))
    else:
        touched = set(body.digests) | {e.load_balancer_id for e in body.errors} | set(body.removed)
        digests: dict[str, Any] = dict(node.digests or {})
        for lb_id in touched:
            digests.pop(lb_id, None)
        digests.update(body.digests)
        node.digests = digests
        ids = sorted(touched)
        for i in range(0, len(ids), _CHUNK):
            session.execute(
                delete(NodeLbError).where(
                    mine, NodeLbError.load_balancer_id.in_(ids[i : i + _CHUNK])
                )
            )
    session.add_all(
        NodeLbError(
            node_id=node.id,
            load_balancer_id=e.load_balancer_id,
            revision=e.revision,
            reason=e.reason,
        )
        for e in body.errors
    )
    node.report_seq = body.report
