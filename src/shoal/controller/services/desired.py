"""What each agent is told: the desired state of every load balancer its node serves, the
member health decided here, and which health checks it runs. Built from stored canonical JSON
by concatenation, so a node serving thousands of load balancers gets its state quickly.

L4 nodes get every load balancer; for an L7 one, its VIP's backends are the L7 nodes it is
placed on (`l7_nodes`). L7 nodes get the load balancers placed on them, with the
certificates their listeners use (keys decrypted: this is the one place they leave)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.controller.db.models import (
    Certificate,
    HealthMonitor,
    LoadBalancer,
    Member,
    Node,
    Placement,
    Pool,
    utcnow,
)
from shoal.controller.services import certs, status
from shoal.controller.services.keyring import load_keyring
from shoal.controller.services.writes import current_seq
from shoal.controller.settings import ControllerSettings

__all__ = ["build", "checker_for", "l7_backends"]


def checker_for(subject_id: str, nodes: list[Node]) -> str | None:
    """The one node that health-checks a pool (or an L7 node): rendezvous hashing over the
    live L4 nodes, so the duty moves only for the subjects of a node that leaves."""
    best, owner = b"", None
    for node in nodes:
        score = hashlib.sha256(f"{subject_id}/{node.id}".encode()).digest()
        if score > best:
            best, owner = score, node.id
    return owner


def _head(seq: int, node: Node, settings: ControllerSettings, **extra: Any) -> str:
    return json.dumps(
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
            **extra,
        }
    )


def l7_backends(
    session: Session, settings: ControllerSettings, now: dt.datetime, lb_id: str | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Per L7 load balancer (or just lb_id), the L7 nodes that serve its VIP, in a stable
    order."""
    cutoff = status.liveness_cutoff(settings, now)
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    query = (
        select(Placement.load_balancer_id, Placement.state, Placement.ready_seq, Node)
        .join(Node, Node.id == Placement.node_id)
        .order_by(Placement.load_balancer_id, Node.id)
    )
    if lb_id is not None:
        query = query.where(Placement.load_balancer_id == lb_id)
    for lb_id, state, ready_seq, node in session.execute(query):
        address = node.data_address or node.address
        if not address:
            continue
        out[lb_id].append(
            {
                "id": node.id,
                "address": address,
                # PENDING: placed, but the node has not applied it yet (no new flows).
                "state": "PENDING" if state == "ACTIVE" and node.applied_seq < ready_seq else state,
                "healthy": node.health != "DOWN" and node.last_seen >= cutoff,
            }
        )
    return out


def _l4(session: Session, node: Node, settings: ControllerSettings, now: dt.datetime) -> str:
    checkers = status.alive_nodes(session, settings, now, role="l4")
    if node not in checkers:
        checkers.append(node)
    lbs = list(
        session.execute(
            select(
                LoadBalancer.id,
                LoadBalancer.revision,
                LoadBalancer.current_config,
                LoadBalancer.revision_request_id,
            ).where(
                LoadBalancer.current_config != "null",
                LoadBalancer.current_config != "{}",
                LoadBalancer.provider != "noop",  # configured nowhere
            )
        )
    )
    # Monitored members of L4 load balancers (an L7 one's members are HAProxy's to check):
    # their health, and the pools whose checks this node runs (a pool without members has
    # nothing to check).
    health: dict[str, dict[str, str]] = defaultdict(dict)
    monitored: set[tuple[str, str]] = set()
    for lb_id, pool_id, member_id, state in session.execute(
        select(Pool.load_balancer_id, Pool.id, Member.id, Member.health)
        .join(Member.pool)
        .join(HealthMonitor, HealthMonitor.pool_id == Pool.id)
        .join(LoadBalancer, LoadBalancer.id == Pool.load_balancer_id)
        .where(LoadBalancer.kind == "l4")
    ):
        health[lb_id][member_id] = state
        monitored.add((lb_id, pool_id))
    checks: dict[str, list[str]] = defaultdict(list)
    for lb_id, pool_id in monitored:
        if checker_for(pool_id, checkers) == node.id:
            checks[lb_id].append(pool_id)
    l7_nodes = l7_backends(session, settings, now)
    node_checks = [
        {
            "node_id": n.id,
            "address": n.data_address or n.address,
            "port": settings.l7_monitor_port,
            "interval": settings.l7_check_interval,
        }
        for n in session.scalars(select(Node).where(Node.role == "l7").order_by(Node.id))
        if (n.data_address or n.address) and checker_for(n.id, checkers) == node.id
    ]
    parts = []
    for lb_id, revision, config, rid in lbs:
        extra = f',"l7_nodes":{json.dumps(l7_nodes[lb_id])}' if lb_id in l7_nodes else ""
        parts.append(
            f'{{"id":"{lb_id}","revision":{revision},"request_id":{json.dumps(rid)},'
            f'"config":{config},'
            f'"member_health":{json.dumps(health.get(lb_id, {}))},'
            f'"health_checks":{json.dumps(sorted(checks.get(lb_id, [])))}{extra}}}'
        )
    head = _head(current_seq(session), node, settings, node_checks=node_checks)
    return head[:-1] + ',"load_balancers":[' + ",".join(parts) + "]}"


def _l7(session: Session, node: Node, settings: ControllerSettings) -> str:
    placed: dict[str, str] = {
        lb_id: state
        for lb_id, state in session.execute(
            select(Placement.load_balancer_id, Placement.state).where(Placement.node_id == node.id)
        )
    }
    lbs = list(
        session.execute(
            select(
                LoadBalancer.id,
                LoadBalancer.revision,
                LoadBalancer.current_config,
                LoadBalancer.revision_request_id,
            ).where(
                LoadBalancer.id.in_(placed),
                LoadBalancer.current_config != "null",
                LoadBalancer.current_config != "{}",
            )
        )
    )
    wanted: set[str] = set()
    for _, _, config, _ in lbs:
        for li in json.loads(config).get("listeners", []):
            refs = [li.get("default_tls_container_ref"), *li.get("sni_container_refs", [])]
            wanted |= {certs.cert_id_of(r) for r in refs if r}
    keyring = load_keyring(settings)
    bundles = {
        c.id: certs.bundle(c, keyring)
        for c in session.scalars(select(Certificate).where(Certificate.id.in_(wanted)))
    }
    parts = [
        f'{{"id":"{lb_id}","revision":{revision},"request_id":{json.dumps(rid)},'
        f'"config":{config},"placement":"{placed[lb_id]}"}}'
        for lb_id, revision, config, rid in lbs
    ]
    head = _head(current_seq(session), node, settings, certificates=bundles)
    return head[:-1] + ',"load_balancers":[' + ",".join(parts) + "]}"


def build(session: Session, node: Node, settings: ControllerSettings) -> str:
    now = utcnow()
    node.last_seen = now
    if node.role == "l7":
        return _l7(session, node, settings)
    return _l4(session, node, settings, now)
