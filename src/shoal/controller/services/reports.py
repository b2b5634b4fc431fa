"""Storing a node's report: a whole one replaces the node's table digests and errors, a
delta (shoal.wire.report.NodeReport.base) changes only the load balancers it names, so a
report after one change costs that change, not the node's whole state. Either way the node's
stored view ends up what a whole report would have made it.

Digests are one row per (node, load balancer) (NodeLbDigest): a delta deletes and inserts
the rows it names; a whole report compares with the rows held and writes only those that
differ (an agent that always reports whole costs one read of its rows, no rewrite). The
per-LB and per-backend traffic are columns of their own, replaced only by the reports that
carry them, so a report without traffic neither reads nor writes them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from shoal.controller.db.models import Node, NodeLbDigest, NodeLbError
from shoal.controller.errors import Conflict
from shoal.wire.report import NodeReport

__all__ = ["digests_by_node", "lb_digests", "store_counters", "store_tables"]

_CHUNK = 5000  # ids per IN (...): well under SQLite's and PostgreSQL's parameter limits
_MISSING = object()


def _delete_rows(session: Session, model: Any, node: Node, lb_ids: Iterable[str]) -> None:
    ids = sorted(lb_ids)
    for i in range(0, len(ids), _CHUNK):
        session.execute(
            delete(model).where(
                model.node_id == node.id, model.load_balancer_id.in_(ids[i : i + _CHUNK])
            )
        )


def store_tables(session: Session, node: Node, body: NodeReport) -> None:
    """The report's digests and errors into the node's rows (this node's only)."""
    if body.base is not None and body.base != node.report_seq:
        raise Conflict(
            f"report base {body.base} is not the last report stored for node {node.name} "
            f"({'none' if node.report_seq is None else node.report_seq}): send a whole report"
        )
    if body.base is None:
        held: dict[str, Any] = dict(
            session.execute(
                select(NodeLbDigest.load_balancer_id, NodeLbDigest.digests).where(
                    NodeLbDigest.node_id == node.id
                )
            ).all()
        )
        write = {k: v for k, v in body.digests.items() if held.get(k, _MISSING) != v}
        _delete_rows(
            session, NodeLbDigest, node, [k for k in held if k in write or k not in body.digests]
        )
        session.execute(delete(NodeLbError).where(NodeLbError.node_id == node.id))
    else:
        write = body.digests
        touched = set(body.digests) | {e.load_balancer_id for e in body.errors} | set(body.removed)
        _delete_rows(session, NodeLbDigest, node, touched)
        _delete_rows(session, NodeLbError, node, touched)
    if write:
        session.execute(
            insert(NodeLbDigest),
            [{"node_id": node.id, "load_balancer_id": k, "digests": v} for k, v in write.items()],
        )
    if body.errors:
        session.execute(
            insert(NodeLbError),
            [
                {
                    "node_id": node.id,
                    "load_balancer_id": e.load_balancer_id,
                    "revision": e.revision,
                    "reason": e.reason,
                }
                for e in body.errors
            ],
        )
    node.report_seq = body.report


def store_counters(node: Node, body: NodeReport) -> None:
    """The node's counters, routing and flood state; the traffic only when the report has
    it (an agent sends it every few seconds, not with every change: keep the last)."""
    counters = dict(body.counters)
    lb_traffic = counters.pop("load_balancers", None)
    counters.pop("backends", None)  # typed in body.backends/routing, never free-form
    counters.pop("routing", None)
    if body.routing is not None:
        counters["routing"] = body.routing.model_dump(mode="json")
    node.counters = counters
    if lb_traffic is not None:
        node.lb_traffic = lb_traffic
    if body.backends is not None:
        node.backend_traffic = [b.model_dump(mode="json") for b in body.backends]


def digests_by_node(session: Session, node_ids: list[str]) -> dict[str, dict[str, Any]]:
    """node id -> {load balancer id: digests} (every node given, empty when none)."""
    out: dict[str, dict[str, Any]] = {n: {} for n in node_ids}
    for i in range(0, len(node_ids), _CHUNK):
        for node_id, lb_id, digests in session.execute(
            select(NodeLbDigest.node_id, NodeLbDigest.load_balancer_id, NodeLbDigest.digests)
            .where(NodeLbDigest.node_id.in_(node_ids[i : i + _CHUNK]))
            .order_by(NodeLbDigest.node_id, NodeLbDigest.load_balancer_id)
        ):
            out[node_id][lb_id] = digests
    return out


def lb_digests(session: Session, lb_id: str) -> dict[str, Any]:
    """node id -> the digests it reported for this load balancer (nodes that have some)."""
    return dict(
        session.execute(
            select(NodeLbDigest.node_id, NodeLbDigest.digests).where(
                NodeLbDigest.load_balancer_id == lb_id
            )
        ).all()
    )
