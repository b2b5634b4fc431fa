"""Where L7 load balancers run. Each one is placed on one node in each of `clusters_per_lb`
different L7 clusters (active-active: the L4 tier spreads its VIP over all of them), on the
node of the cluster with the lowest utilisation (placements / declared capacity).

Placements are sticky: a load balancer only moves when its node leaves (deleted, or silent
for node_dead_after), is drained by an operator, or when rebalancing after a node joined
finds a strictly better spread. A move never cuts traffic: the old placement turns DRAINING
(the L4 tier sends it no new flows, its HAProxy keeps serving what it has) until
drain_until, while the new one is ACTIVE at once.

`plan` is a pure function of (load balancers, nodes, placements, now) so it can be tested
exhaustively; `reconcile` and `place` apply it to the database."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from shoal.controller.db.models import Event, LoadBalancer, Node, Placement, utcnow
from shoal.controller.services import feed, status
from shoal.controller.settings import ControllerSettings

__all__ = ["L7Node", "Plan", "Slot", "place", "plan", "reconcile"]

ACTIVE, DRAINING = "ACTIVE", "DRAINING"


@dataclass(frozen=True)
class L7Node:
    id: str
    name: str
    cluster: str
    capacity: int
    present: bool  # alive: keeps its placements
    accepting: bool  # alive and not drained: may take new ones


@dataclass(frozen=True)
class Slot:
    lb_id: str
    node_id: str
    state: str = ACTIVE
    drain_until: dt.datetime | None = None


@dataclass
class Plan:
    slots: set[Slot]
    events: list[tuple[str, str, str]] = field(default_factory=list)  # lb, kind, message
    unplaced: dict[str, str] = field(default_factory=dict)  # lb -> why (no or one cluster)


def _affinity(lb_id: str, node_id: str) -> bytes:
    """Rendezvous score: breaks ties the same way on every controller, and spreads load
    balancers of equal standing over nodes of equal load."""
    return hashlib.sha256(f"{lb_id}/{node_id}".encode()).digest()


def _utilisation(load: int, node: L7Node) -> float:
    return load / node.capacity


def _choose(
    lb_id: str,
    nodes: Iterable[L7Node],
    load: Counter[str],
    exclude_clusters: set[str],
    exclude_nodes: set[str],
) -> L7Node | None:
    """The accepting node with room, outside the given clusters, that would be the least
    utilised after taking lb_id."""
    candidates = [
        n
        for n in nodes
        if n.accepting
        and n.cluster not in exclude_clusters
        and n.id not in exclude_nodes
        and load[n.id] < n.capacity
    ]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda n: (_utilisation(load[n.id] + 1, n), _affinity(lb_id, n.id)[::-1]),
    )


def plan(
    lb_ids: Iterable[str],
    nodes: Iterable[L7Node],
    current: Iterable[Slot],
    now: dt.datetime,
    *,
    drain_seconds: float,
    clusters_per_lb: int = 2,
    max_moves: int = 8,
    other_load: Counter[str] | None = None,
) -> Plan:
    """The placements after one round: departed nodes dropped, drained nodes' placements
    DRAINING, finished drains removed, missing clusters filled, then at most max_moves
    rebalancing moves inside clusters. other_load: active placements of load balancers not
    planned here, per node."""
    by_id = {n.id: n for n in nodes}
    wanted = set(lb_ids)
    drain_until = now + dt.timedelta(seconds=drain_seconds)
    out = Plan(set())
    slots: dict[tuple[str, str], Slot] = {}
    for s in current:
        node = by_id.get(s.node_id)
        if s.lb_id not in wanted:
            continue
        if node is None or not node.present:
            out.events.append((s.lb_id, "placement_lost", f"node {s.node_id} left"))
            continue
        if s.state == DRAINING and s.drain_until is not None and s.drain_until <= now:
            continue
        if s.state == ACTIVE and not node.accepting:
            s = replace(s, state=DRAINING, drain_until=drain_until)
            out.events.append((s.lb_id, "placement_draining", f"node {node.name} is drained"))
        slots[(s.lb_id, s.node_id)] = s

    def active_load() -> Counter[str]:
        return Counter(s.node_id for s in slots.values() if s.state == ACTIVE)

    load = active_load() + (other_load or Counter())
    by_lb: dict[str, list[Slot]] = defaultdict(list)
    for s in slots.values():
        by_lb[s.lb_id].append(s)
    for lb_id in sorted(wanted):
        mine = by_lb.get(lb_id, [])
        clusters = {by_id[s.node_id].cluster for s in mine if s.state == ACTIVE}
        while len(clusters) < clusters_per_lb:
            # A node this load balancer still drains on comes back first: no new copy needed.
            back = [
                s
                for s in mine
                if s.state == DRAINING
                and by_id[s.node_id].accepting
                and by_id[s.node_id].cluster not in clusters
            ]
            if back:
                s = back[0]
                slots[(lb_id, s.node_id)] = replace(s, state=ACTIVE, drain_until=None)
                mine = [x for x in mine if x is not s] + [slots[(lb_id, s.node_id)]]
                clusters.add(by_id[s.node_id].cluster)
                load[s.node_id] += 1
                continue
            node = _choose(lb_id, by_id.values(), load, clusters, {s.node_id for s in mine})
            if node is None:
                break
            new = Slot(lb_id, node.id)
            slots[(lb_id, node.id)] = new
            mine = [*mine, new]
            clusters.add(node.cluster)
            load[node.id] += 1
            out.events.append((lb_id, "placed", f"placed on node {node.name} ({node.cluster})"))
        if len(clusters) < clusters_per_lb:
            out.unplaced[lb_id] = (
                f"placed in {len(clusters)} of {clusters_per_lb} L7 clusters: "
                "no other cluster has an active node with free capacity"
                if clusters
                else "no L7 node has free capacity (register or undrain L7 nodes)"
            )
    _rebalance(slots, by_id, load, now, drain_until, max_moves, out)
    out.slots = set(slots.values())
    return out


def _rebalance(
    slots: dict[tuple[str, str], Slot],
    by_id: dict[str, L7Node],
    load: Counter[str],
    now: dt.datetime,
    drain_until: dt.datetime,
    max_moves: int,
    out: Plan,
) -> None:
    """Moves load balancers from the most to the least utilised node of a cluster while that
    strictly lowers the higher of the two utilisations (so it converges, and never moves for
    a difference of one placement between equal nodes)."""
    clusters: dict[str, list[L7Node]] = defaultdict(list)
    for n in by_id.values():
        if n.accepting:
            clusters[n.cluster].append(n)
    moves = 0
    for cluster in sorted(clusters):
        members = clusters[cluster]
        while moves < max_moves and len(members) > 1:
            heavy = max(members, key=lambda n: (_utilisation(load[n.id], n), n.id))
            light = min(members, key=lambda n: (_utilisation(load[n.id] + 1, n), n.id))
            if light.id == heavy.id or load[light.id] >= light.capacity:
                break
            if _utilisation(load[light.id] + 1, light) >= _utilisation(load[heavy.id], heavy):
                break
            present = {lb for (lb, node) in slots if node == light.id}
            movable = [
                s
                for s in slots.values()
                if s.node_id == heavy.id and s.state == ACTIVE and s.lb_id not in present
            ]
            if not movable:
                break
            s = max(movable, key=lambda x: _affinity(x.lb_id, light.id))
            slots[(s.lb_id, heavy.id)] = replace(s, state=DRAINING, drain_until=drain_until)
            slots[(s.lb_id, light.id)] = Slot(s.lb_id, light.id)
            load[heavy.id] -= 1
            load[light.id] += 1
            moves += 1
            out.events.append(
                (
                    s.lb_id,
                    "placement_moved",
                    f"moving from node {heavy.name} to {light.name} (rebalancing {cluster})",
                )
            )


# ---- database ---------------------------------------------------------------------------


def _nodes(session: Session, settings: ControllerSettings, now: dt.datetime) -> list[L7Node]:
    cutoff = status.liveness_cutoff(settings, now)
    return [
        L7Node(
            id=n.id,
            name=n.name,
            cluster=n.cluster,
            capacity=max(1, n.capacity),
            present=n.last_seen >= cutoff,
            accepting=n.last_seen >= cutoff and n.admin_state == "ACTIVE",
        )
        for n in session.scalars(select(Node).where(Node.role == "l7"))
    ]


def _lock(session: Session) -> None:
    """One planner at a time across controllers (SQLite writers are serialised already)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(7365)"))


def _apply(session: Session, before: list[Placement], result: Plan, now: dt.datetime) -> bool:
    old = {(p.load_balancer_id, p.node_id): p for p in before}
    new = {(s.lb_id, s.node_id): s for s in result.slots}
    activated: list[Placement] = []
    changed = False
    # Before the rows change: which load balancers' placements differ.
    moved = {k[0] for k in old.keys() ^ new.keys()}
    moved |= {k[0] for k in old.keys() & new.keys() if old[k].state != new[k].state}
    for key, gone in old.items():
        if key not in new:
            session.delete(gone)
            changed = True
    for key, s in new.items():
        row = old.get(key)
        if row is None:
            row = Placement(
                load_balancer_id=s.lb_id,
                node_id=s.node_id,
                state=s.state,
                since=now,
                drain_until=s.drain_until,
            )
            session.add(row)
            activated.append(row)
        elif row.state != s.state or row.drain_until != s.drain_until:
            if s.state == ACTIVE:
                activated.append(row)
            row.state, row.drain_until, row.since = s.state, s.drain_until, now
    changed = (
        bool(activated)
        or old.keys() != new.keys()
        or any(old[k].state != new[k].state for k in old.keys() & new.keys())
    )
    if not changed and not any(
        old[k].drain_until != new[k].drain_until for k in old.keys() & new.keys()
    ):
        return False
    projects = dict(
        session.execute(
            select(LoadBalancer.id, LoadBalancer.project_id).where(
                LoadBalancer.id.in_({lb for lb, _, _ in result.events})
            )
        ).all()
    )
    for lb_id, kind, message in result.events:
        session.add(
            Event(
                project_id=projects.get(lb_id),
                load_balancer_id=lb_id,
                kind=kind,
                message=f"load balancer {lb_id}: {message}",
            )
        )
    # Each load balancer whose placements changed is told, and a placement made active
    # becomes ready once its node applied that change.
    moved |= {row.load_balancer_id for row in activated}
    feed.record(
        session,
        "placement",
        sorted(moved),
        stamp=[(row, "ready_seq", row.load_balancer_id) for row in activated],
    )
    return True


def _slot(p: Placement) -> Slot:
    return Slot(p.load_balancer_id, p.node_id, p.state, p.drain_until)


def reconcile(
    session: Session, settings: ControllerSettings, now: dt.datetime | None = None
) -> bool:
    """One planning round over every L7 load balancer; True when placements changed (a
    change was published for the agents)."""
    now = now or utcnow()
    _lock(session)
    live = set(
        session.scalars(
            select(LoadBalancer.id).where(
                LoadBalancer.kind == "l7",
                LoadBalancer.current_config != "null",
                LoadBalancer.provider != "noop",
            )
        )
    )
    # A load balancer being deleted keeps its placements until the nodes removed it.
    mine = [p for p in session.scalars(select(Placement)) if p.load_balancer_id in live]
    result = plan(
        live,
        _nodes(session, settings, now),
        [_slot(p) for p in mine],
        now,
        drain_seconds=settings.l7_drain_seconds,
        clusters_per_lb=settings.l7_clusters_per_lb,
        max_moves=settings.l7_moves_per_tick,
    )
    return _apply(session, mine, result, now)


def place(session: Session, lb: LoadBalancer, settings: ControllerSettings) -> str | None:
    """Places one new load balancer right away (its VIP should work within a second, not
    at the next planning round). Returns why it could not be fully placed, if so."""
    now = utcnow()
    _lock(session)
    mine = list(session.scalars(select(Placement).where(Placement.load_balancer_id == lb.id)))
    others: Counter[str] = Counter()
    for node_id, count in session.execute(
        select(Placement.node_id, func.count())
        .where(Placement.load_balancer_id != lb.id, Placement.state == ACTIVE)
        .group_by(Placement.node_id)
    ):
        others[node_id] = count
    result = plan(
        [lb.id],
        _nodes(session, settings, now),
        [_slot(p) for p in mine],
        now,
        drain_seconds=settings.l7_drain_seconds,
        clusters_per_lb=settings.l7_clusters_per_lb,
        max_moves=0,
        other_load=others,
    )
    _apply(session, mine, result, now)
    return result.unplaced.get(lb.id)
