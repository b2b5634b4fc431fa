"""What each agent is told: the desired state of every load balancer its node serves, the
member health decided here, and which pools it health-checks. Built from stored canonical JSON
by concatenation, so a node serving thousands of load balancers gets its state quickly."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.controller.db.models import HealthMonitor, LoadBalancer, Member, Node, Pool, utcnow
from shoal.controller.services import status
from shoal.controller.services.writes import current_seq
from shoal.controller.settings import ControllerSettings

__all__ = ["build", "checker_for"]


def checker_for(pool_id: str, nodes: list[Node]) -> str | None:
    """The one node that health-checks a pool: rendezvous hashing over the live L4 nodes, so
    the duty moves only for the pools of a node that leaves."""
    best, owner = b"", None
    for node in nodes:
        score = hashlib.sha256(f"{pool_id}/{node.id}".encode()).digest()
        if score > best:
            best, owner = score, node.id
    return owner


def build(session: Session, node: Node, settings: ControllerSettings) -> str:
    now = utcnow()
    seq = current_seq(session)
    node.last_seen = now
    checkers = [n for n in status.alive_nodes(session, settings, now, role="l4")]
    if node not in checkers and node.role == "l4":
        checkers.append(node)
    lbs = list(
        session.execute(
            select(LoadBalancer.id, LoadBalancer.revision, LoadBalancer.current_config).where(
                LoadBalancer.current_config != "null", LoadBalancer.current_config != "{}"
            )
        )
    )
    health: dict[str, dict[str, str]] = defaultdict(dict)
    for lb_id, member_id, state in session.execute(
        select(Pool.load_balancer_id, Member.id, Member.health)
        .join(Member.pool)
        .join(HealthMonitor, HealthMonitor.pool_id == Pool.id)
    ):
        health[lb_id][member_id] = state
    checks: dict[str, list[str]] = defaultdict(list)
    if node.role == "l4":
        for lb_id, pool_id in session.execute(
            select(Pool.load_balancer_id, Pool.id).join(
                HealthMonitor, HealthMonitor.pool_id == Pool.id
            )
        ):
            if checker_for(pool_id, checkers) == node.id:
                checks[lb_id].append(pool_id)
    head = json.dumps(
        {
            "seq": seq,
            "node": {
                "id": node.id,
                "name": node.name,
                "role": node.role,
                "cluster": node.cluster,
                "admin_state": node.admin_state,
            },
            "settings": {"seed": settings.cluster_seed},
        }
    )
    parts = []
    for lb_id, revision, config in lbs:
        parts.append(
            f'{{"id":"{lb_id}","revision":{revision},"config":{config},'
            f'"member_health":{json.dumps(health.get(lb_id, {}))},'
            f'"health_checks":{json.dumps(sorted(checks.get(lb_id, [])))}}}'
        )
    return head[:-1] + ',"load_balancers":[' + ",".join(parts) + "]}"
