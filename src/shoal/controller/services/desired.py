"""What each agent is told (the `shoal.wire.feed.Feed` model): the desired state of the load
balancers its node serves, the member health decided here, and which health checks it runs;
either all of them (a snapshot) or those changed since the agent's position in the feed.
Rendered per load balancer from stored canonical JSON by concatenation, so an answer costs
what it carries.

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
    Change,
    HealthMonitor,
    LoadBalancer,
    Member,
    Node,
    Placement,
    Pool,
    utcnow,
)
from shoal.controller.services import certs, feed, status
from shoal.controller.services.keyring import load_keyring
from shoal.controller.settings import ControllerSettings
from shoal.wire.feed import SCHEMA_VERSION

__all__ = ["build", "changes", "checker_for", "l7_backends"]


def checker_for(subject_id: str, nodes: list[Node]) -> str | None:
    """The one node that health-checks a pool (or an L7 node): rendezvous hashing over the
    live L4 nodes, so the duty moves only for the subjects of a node that leaves."""
    best, owner = b"", None
    for node in nodes:
        score = hashlib.sha256(f"{subject_id}/{node.id}".encode()).digest()
        if score > best:
            best, owner = score, node.id
    return owner


def l4_checkers(fleet: list[Node], node: Node, cutoff: dt.datetime) -> list[Node]:
    """The nodes checks are spread over, for `node` asking: the live L4 nodes of the fleet,
    and the asking node (an agent that reaches the controller is alive). One rule for the
    duty a node is given (the feed) and the results accepted from it (duties)."""
    checkers = [n for n in fleet if n.role == "l4" and n.last_seen >= cutoff]
    return checkers if node in checkers else [*checkers, node]


def _head(seq: int, node: Node, settings: ControllerSettings, **extra: Any) -> str:
    """The answer up to its load balancers, as an open JSON object."""
    doc = json.dumps(
        {
            "schema_version": SCHEMA_VERSION,
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
    return doc[:-1]


def l7_backends(
    session: Session,
    settings: ControllerSettings,
    now: dt.datetime,
    lb_id: str | None = None,
    lb_ids: set[str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Per L7 load balancer (or just lb_id, or those of lb_ids), the L7 nodes that serve
    its VIP, in a stable order."""
    cutoff = status.liveness_cutoff(settings, now)
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    query = (
        select(Placement.load_balancer_id, Placement.state, Placement.ready_seq, Node)
        .join(Node, Node.id == Placement.node_id)
        .order_by(Placement.load_balancer_id, Node.id)
    )
    if lb_id is not None:
        query = query.where(Placement.load_balancer_id == lb_id)
    if lb_ids is not None:
        query = query.where(Placement.load_balancer_id.in_(lb_ids))
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


Parts = dict[str, str]  # load balancer id -> its LbState as JSON, in answer order


def _l4(
    session: Session,
    node: Node,
    settings: ControllerSettings,
    now: dt.datetime,
    lb_ids: set[str] | None,
) -> tuple[Parts, dict[str, Any]]:
    """The load balancers of lb_ids (None: all) an L4 node runs, and the head's extras."""
    # Every node in one read (a fleet is tens of rows): the live L4 ones share the checks,
    # the L7 ones are checked.
    fleet = list(session.scalars(select(Node).order_by(Node.id)))
    checkers = l4_checkers(fleet, node, status.liveness_cutoff(settings, now))
    query = select(
        LoadBalancer.id,
        LoadBalancer.revision,
        LoadBalancer.revision_seq,
        LoadBalancer.current_config,
        LoadBalancer.revision_request_id,
        LoadBalancer.kind,
    ).where(
        LoadBalancer.current_config != "null",
        LoadBalancer.current_config != "{}",
        LoadBalancer.provider != "noop",  # configured nowhere
    )
    monitored_query = (
        select(Pool.load_balancer_id, Pool.id, Member.id, Member.health)
        .join(Member.pool)
        .join(HealthMonitor, HealthMonitor.pool_id == Pool.id)
        .join(LoadBalancer, LoadBalancer.id == Pool.load_balancer_id)
        .where(LoadBalancer.kind == "l4")
    )
    if lb_ids is not None:
        query = query.where(LoadBalancer.id.in_(lb_ids))
        monitored_query = monitored_query.where(Pool.load_balancer_id.in_(lb_ids))
    lbs = list(session.execute(query.order_by(LoadBalancer.id)))
    # Monitored members of L4 load balancers (an L7 one's members are HAProxy's to check):
    # their health, and the pools whose checks this node runs (a pool without members has
    # nothing to check).
    health: dict[str, dict[str, str]] = defaultdict(dict)
    monitored: set[tuple[str, str]] = set()
    for lb_id, pool_id, member_id, state in session.execute(monitored_query):
        health[lb_id][member_id] = state
        monitored.add((lb_id, pool_id))
    checks: dict[str, list[str]] = defaultdict(list)
    for lb_id, pool_id in monitored:
        if checker_for(pool_id, checkers) == node.id:
            checks[lb_id].append(pool_id)
    # Only L7 load balancers are placed: a delta of L4 ones has no placements to read.
    l7_ids = {row[0] for row in lbs if row[5] == "l7"}
    l7_nodes = (
        l7_backends(session, settings, now, lb_ids=lb_ids if lb_ids is None else l7_ids)
        if lb_ids is None or l7_ids
        else {}
    )
    node_checks = [
        {
            "node_id": n.id,
            "address": n.data_address or n.address,
            "port": settings.l7_monitor_port,
            "interval": settings.l7_check_interval,
        }
        for n in fleet
        if n.role == "l7"
        and (n.data_address or n.address)
        and checker_for(n.id, checkers) == node.id
    ]
    parts: Parts = {}
    for lb_id, revision, seq, config, rid, _kind in lbs:
        extra = f',"l7_nodes":{json.dumps(l7_nodes[lb_id])}' if lb_id in l7_nodes else ""
        parts[lb_id] = (
            f'{{"id":"{lb_id}","revision":{revision},"seq":{seq},'
            f'"request_id":{json.dumps(rid)},"config":{config},'
            f'"member_health":{json.dumps(health.get(lb_id, {}))},'
            f'"health_checks":{json.dumps(sorted(checks.get(lb_id, [])))}{extra}}}'
        )
    return parts, {"node_checks": node_checks}


def _l7(
    session: Session, node: Node, settings: ControllerSettings, lb_ids: set[str] | None
) -> tuple[Parts, dict[str, Any]]:
    """The load balancers of lb_ids (None: all) placed on an L7 node, with the certificates
    their listeners use."""
    query = select(Placement.load_balancer_id, Placement.state).where(Placement.node_id == node.id)
    if lb_ids is not None:
        query = query.where(Placement.load_balancer_id.in_(lb_ids))
    placed: dict[str, str] = {lb_id: st for lb_id, st in session.execute(query)}
    lbs = list(
        session.execute(
            select(
                LoadBalancer.id,
                LoadBalancer.revision,
                LoadBalancer.revision_seq,
                LoadBalancer.current_config,
                LoadBalancer.revision_request_id,
            )
            .where(
                LoadBalancer.id.in_(placed),
                LoadBalancer.current_config != "null",
                LoadBalancer.current_config != "{}",
            )
            .order_by(LoadBalancer.id)
        )
    )
    wanted: set[str] = set()
    for _, _, _, config, _ in lbs:
        for li in json.loads(config).get("listeners", []):
            refs = [li.get("default_tls_container_ref"), *li.get("sni_container_refs", [])]
            wanted |= {certs.cert_id_of(r) for r in refs if r}
    bundles: dict[str, str] = {}
    if wanted:
        keyring = load_keyring(settings)
        bundles = {
            c.id: certs.bundle(c, keyring)
            for c in session.scalars(select(Certificate).where(Certificate.id.in_(wanted)))
        }
    parts: Parts = {
        lb_id: f'{{"id":"{lb_id}","revision":{revision},"seq":{seq},'
        f'"request_id":{json.dumps(rid)},"config":{config},"placement":"{placed[lb_id]}"}}'
        for lb_id, revision, seq, config, rid in lbs
    }
    return parts, {"certificates": bundles}


def _parts(
    session: Session, node: Node, settings: ControllerSettings, lb_ids: set[str] | None
) -> tuple[Parts, dict[str, Any]]:
    now = utcnow()
    node.last_seen = now
    if node.role == "l7":
        return _l7(session, node, settings, lb_ids)
    return _l4(session, node, settings, now, lb_ids)


def build(session: Session, node: Node, settings: ControllerSettings) -> str:
    """A snapshot: everything the node runs, at the feed's head."""
    seq = feed.head(session)  # first: rows read after it are at least as new
    parts, extra = _parts(session, node, settings, None)
    return (
        _head(seq, node, settings, snapshot=True, **extra)
        + ',"load_balancers":['
        + ",".join(parts.values())
        + "]}"
    )


def changes(
    session: Session, node: Node, settings: ControllerSettings, position: int, limit: int
) -> str | None:
    """What changed for this node since position, or None when the answer must be a
    snapshot: the position is unknown (ahead of the head: another database), lost to
    compaction, or a change concerns every load balancer (a node's state, the set of live
    nodes). At most `limit` changes per answer (`more` then says to ask again at once)."""
    low, seq = feed.bounds(session)
    if position <= 0 or position > seq or position < low - 1:
        return None
    rows = list(
        session.execute(
            select(Change.id, Change.load_balancer_id, Change.kind)
            .where(Change.id > position, Change.id <= seq)
            .order_by(Change.id)
            .limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if more:
        seq = rows[-1][0]
    last: dict[str, int] = {}
    moved: set[str] = set()  # placements changed: may have left this node
    for change_id, lb_id, kind in rows:
        if lb_id is None:
            return None
        last.pop(lb_id, None)
        last[lb_id] = change_id  # ordered by each one's latest change
        if kind == "placement":
            moved.add(lb_id)
    parts, extra = _parts(session, node, settings, set(last))
    entries = [parts[k] for k in last if k in parts]
    gone = [k for k in last if k not in parts]  # deleted, unplaced, or not this node's
    if node.role == "l7":
        # Only what was or may have been on this node: a deleted load balancer keeps its
        # placement until its nodes removed it. Others' ids are none of its business.
        held = set(
            session.scalars(
                select(Placement.load_balancer_id).where(
                    Placement.node_id == node.id, Placement.load_balancer_id.in_(gone)
                )
            )
        )
        gone = [k for k in gone if k in held or k in moved]
    return (
        _head(seq, node, settings, snapshot=False, more=more, **extra)
        + ',"load_balancers":['
        + ",".join(entries)
        + '],"deleted":'
        + json.dumps(gone)
        + "}"
    )
