"""What a node may speak for: the load balancers it serves and the checks it was given. The
agents' endpoints refuse reports about anything else, so one node's credential cannot move
another node's load balancers, members or peers."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.controller.db.models import HealthMonitor, LoadBalancer, Member, Node, Placement, Pool
from shoal.controller.services import status
from shoal.controller.services.desired import checker_for, l4_checkers
from shoal.controller.settings import ControllerSettings

__all__ = ["Checks", "foreign_lbs", "member_checks", "node_checks"]


def _l4_checkers(
    session: Session, node: Node, settings: ControllerSettings, now: dt.datetime
) -> list[Node]:
    """The L4 nodes checks are spread over, as the desired state computes them."""
    alive = status.alive_nodes(session, settings, now, role="l4")
    return l4_checkers(alive, node, status.liveness_cutoff(settings, now))


def foreign_lbs(session: Session, node: Node, lb_ids: set[str]) -> set[str]:
    """Of these existing load balancers, the ones this node does not serve. An L4 node
    serves every VIP; an L7 node the load balancers placed on it. Ids of load balancers that
    no longer exist are not foreign: a lagging agent may still mention them."""
    if not lb_ids or node.role == "l4":
        return set()
    existing = set(session.scalars(select(LoadBalancer.id).where(LoadBalancer.id.in_(lb_ids))))
    placed = set(
        session.scalars(
            select(Placement.load_balancer_id).where(
                Placement.node_id == node.id, Placement.load_balancer_id.in_(existing)
            )
        )
    )
    return existing - placed


class Checks(NamedTuple):
    """forbidden: subjects this node may never report on (the request is refused);
    elsewhere: subjects its role checks but that are now another node's duty (a node that
    has not yet seen the reassignment): their results are ignored."""

    forbidden: set[str]
    elsewhere: set[str]


def member_checks(
    session: Session,
    node: Node,
    member_ids: set[str],
    settings: ControllerSettings,
    now: dt.datetime,
) -> Checks:
    """An L4 node checks the members of monitored L4 pools (those whose checker it is); an
    L7 node the members of the load balancers placed on it (HAProxy checks them). Members
    that no longer exist are neither: their results are dropped anyway."""
    if not member_ids:
        return Checks(set(), set())
    rows = list(
        session.execute(
            select(Member.id, Pool.id, Pool.load_balancer_id, LoadBalancer.kind)
            .join(Pool, Pool.id == Member.pool_id)
            .join(LoadBalancer, LoadBalancer.id == Pool.load_balancer_id)
            .where(Member.id.in_(member_ids))
        )
    )
    if node.role == "l7":
        foreign = foreign_lbs(session, node, {lb_id for _, _, lb_id, _ in rows})
        return Checks({m for m, _, lb_id, kind in rows if kind != "l7" or lb_id in foreign}, set())
    pools = {p for _, p, _, _ in rows}
    monitored = set(
        session.scalars(select(HealthMonitor.pool_id).where(HealthMonitor.pool_id.in_(pools)))
    )
    forbidden = {m for m, pool_id, _, kind in rows if kind != "l4" or pool_id not in monitored}
    checkers = _l4_checkers(session, node, settings, now)
    elsewhere = {
        m
        for m, pool_id, _, _ in rows
        if m not in forbidden and checker_for(pool_id, checkers) != node.id
    }
    return Checks(forbidden, elsewhere)


def node_checks(
    session: Session,
    node: Node,
    node_ids: set[str],
    settings: ControllerSettings,
    now: dt.datetime,
) -> Checks:
    """Only L4 nodes check, and only L7 nodes (those assigned to them)."""
    if not node_ids:
        return Checks(set(), set())
    if node.role != "l4":
        return Checks(set(node_ids), set())
    l7 = set(session.scalars(select(Node.id).where(Node.id.in_(node_ids), Node.role == "l7")))
    checkers = _l4_checkers(session, node, settings, now)
    return Checks(node_ids - l7, {n for n in l7 if checker_for(n, checkers) != node.id})
