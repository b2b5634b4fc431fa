"""Provisioning status from the nodes' reports, and operating status from member health.

A load balancer is PENDING_* from a write until every node that serves it reports the change
applied; ACTIVE then. A node's reported failure makes it ERROR with the node's reason, and so
does a node that has not applied it after `pending_timeout`: nothing stays PENDING. A later
report that the node caught up, or a new write (a retry or a rollback), recovers it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from sqlalchemy import Select, and_, inspect, literal_column, or_, select, update
from sqlalchemy.orm import Session

from shoal.controller.db.models import (
    Event,
    HealthMonitor,
    L7Policy,
    L7Rule,
    Listener,
    LoadBalancer,
    Member,
    Node,
    NodeLbError,
    Placement,
    Pool,
    utcnow,
)
from shoal.controller.services import feed, vips
from shoal.controller.settings import ControllerSettings

__all__ = [
    "alive_nodes",
    "lb_operating_status",
    "member_operating_status",
    "refresh",
    "refresh_pending",
    "unsettled_query",
]

PENDING = ("PENDING_CREATE", "PENDING_UPDATE", "PENDING_DELETE")

# The execution option of a bulk UPDATE that changes only statuses, not a tree's shape
# (services/writes.py reloads a tree's lists after any other bulk statement).
STATUS_ONLY = "shoal_status_only"


# When this controller process started: right after a (re)start no node has had the chance
# to reach it yet, so silence only counts as death once node_dead_after has passed since.
STARTED_AT = utcnow()


def liveness_cutoff(settings: ControllerSettings, now: dt.datetime) -> dt.datetime:
    """Nodes last seen at or after this are alive."""
    grace = dt.timedelta(seconds=settings.node_dead_after)
    if now - STARTED_AT < grace:
        return dt.datetime.min
    return now - grace


def alive_nodes(
    session: Session,
    settings: ControllerSettings,
    now: dt.datetime,
    role: str | None = None,
    *,
    fresh: bool = False,
) -> list[Node]:
    """fresh: re-read rows this session already holds (what others committed since)."""
    query = select(Node).where(Node.last_seen >= liveness_cutoff(settings, now))
    if role:
        query = query.where(Node.role == role)
    if fresh:
        query = query.execution_options(populate_existing=True)
    return list(session.scalars(query))


def serving_nodes(
    session: Session,
    lb: LoadBalancer,
    settings: ControllerSettings,
    now: dt.datetime,
    alive: list[Node] | None = None,
) -> list[Node]:
    """Every live L4 node serves every VIP (ECMP across all of them); an L7 load balancer is
    also served by the live L7 nodes it is placed on (draining placements included: they
    still hold it)."""
    nodes = alive if alive is not None else alive_nodes(session, settings, now)
    placed: set[str] = set()
    if lb.kind == "l7":
        placed = set(
            session.scalars(select(Placement.node_id).where(Placement.load_balancer_id == lb.id))
        )
    return [n for n in nodes if n.role == "l4" or n.id in placed]


def _children(lb: LoadBalancer) -> list[Any]:
    rows: list[Any] = []
    for li in lb.listeners:
        rows.append(li)
        for p in li.l7policies:
            rows.append(p)
            rows.extend(p.rules)
    for pool in lb.pools:
        rows.append(pool)
        rows.extend(pool.members)
        if pool.healthmonitor is not None:
            rows.append(pool.healthmonitor)
    return rows


def _settle(
    session: Session, lb: LoadBalancer, status: str, reason: str | None, in_hand: bool
) -> None:
    """The new status on lb and on its children still pending; each row that changes gets
    updated_at, as Octavia stamps every status change.

    in_hand: the caller (a writer) answers from lb's tree, so its rows are settled as objects,
    loaded first if they are not. Otherwise (a report, the tick) one UPDATE per table settles
    them, unless some of the tree is loaded already and would go stale."""
    now = utcnow()
    if lb.provisioning_status != status:
        lb.updated_at = now
    lb.provisioning_status = status
    lb.provisioning_reason = reason
    lb.pending_since = None if status == "ACTIVE" else lb.pending_since
    if in_hand or _tree_loaded(lb):
        for row in _children(lb):
            if row.provisioning_status != status and (
                row.provisioning_status in PENDING or status == "ACTIVE"
            ):
                row.provisioning_status = status
                row.updated_at = now
    else:  # a report or the tick: one UPDATE per table, no tree loaded to find them
        _settle_rows(session, lb.id, status, now)


def _tree_loaded(lb: LoadBalancer) -> bool:
    unloaded = inspect(lb).unloaded
    return "listeners" not in unloaded or "pools" not in unloaded


def _settle_rows(session: Session, lb_id: str, status: str, now: dt.datetime) -> None:
    """_settle's rule for the children of a load balancer whose tree is not loaded (so no
    loaded row goes stale), as statements on their tables."""
    listeners = select(Listener.id).where(Listener.load_balancer_id == lb_id)
    pools = select(Pool.id).where(Pool.load_balancer_id == lb_id)
    policies = select(L7Policy.id).where(L7Policy.listener_id.in_(listeners))
    for model, owner in (
        (Listener, Listener.load_balancer_id == lb_id),
        (Pool, Pool.load_balancer_id == lb_id),
        (Member, Member.pool_id.in_(pools)),
        (HealthMonitor, HealthMonitor.pool_id.in_(pools)),
        (L7Policy, L7Policy.listener_id.in_(listeners)),
        (L7Rule, L7Rule.l7policy_id.in_(policies)),
    ):
        column = model.provisioning_status
        due = column != status if status == "ACTIVE" else column.in_(PENDING) & (column != status)
        session.execute(
            update(model)
            .where(owner, due)
            .values(provisioning_status=status, updated_at=now)
            # None of them is loaded (_settle); no row changes parent.
            .execution_options(synchronize_session=False, **{STATUS_ONLY: True})
        )


def _fail(session: Session, lb: LoadBalancer, reason: str, in_hand: bool) -> None:
    """ERROR with this reason, and an event (once per reason)."""
    if lb.provisioning_status == "ERROR" and lb.provisioning_reason == reason:
        return
    _settle(session, lb, "ERROR", reason, in_hand)
    session.add(
        Event(
            project_id=lb.project_id,
            load_balancer_id=lb.id,
            kind="error",
            severity="error",
            message=reason,
        )
    )


def refresh(
    session: Session,
    lb: LoadBalancer,
    settings: ControllerSettings,
    now: dt.datetime | None = None,
    alive: list[Node] | None = None,
    *,
    in_hand: bool = False,
) -> str:
    """Re-derives lb's provisioning status; deletes it once a deletion is applied everywhere.
    in_hand: the caller answers from lb's tree (see _settle)."""
    if lb.provisioning_status == "ACTIVE":
        return "ACTIVE"
    now = now or utcnow()
    noop = lb.provider == "noop"  # no node serves it: nothing to wait for
    nodes = [] if noop else serving_nodes(session, lb, settings, now, alive)
    deleting = lb.current_config == "null"
    node_ids = {n.id for n in nodes}
    # A revision this transaction publishes (its position comes at commit) has reached no
    # node yet, so no node can have failed it: no need to look.
    unseen = lb.revision_seq == feed.PENDING_POSITION
    errors = (
        []
        if unseen or not nodes
        else [
            e
            for e in session.scalars(
                select(NodeLbError).where(
                    NodeLbError.load_balancer_id == lb.id, NodeLbError.revision == lb.revision
                )
            )
            if e.node_id in node_ids
        ]
    )
    behind = [n for n in nodes if n.applied_seq < lb.revision_seq]
    placed = (
        noop
        or lb.kind != "l7"
        or deleting
        or session.scalar(
            select(Placement.node_id).where(
                Placement.load_balancer_id == lb.id, Placement.state == "ACTIVE"
            )
        )
        is not None
    )
    if not placed:
        _fail(
            session,
            lb,
            "not placed: no L7 node has free capacity (register or undrain L7 nodes)",
            in_hand,
        )
    elif errors:
        names = {n.id: n.name for n in nodes}
        reason = "; ".join(f"node {names[e.node_id]}: {e.reason}" for e in errors)
        _fail(session, lb, reason, in_hand)
    elif not behind:
        if deleting:
            session.add(
                Event(
                    project_id=lb.project_id,
                    load_balancer_id=lb.id,
                    kind="deleted",
                    message=f"load balancer {lb.id} deleted",
                )
            )
            vips.release(session, lb)
            session.delete(lb)
            return "DELETED"
        _settle(session, lb, "ACTIVE", None, in_hand)
    elif (
        lb.provisioning_status in PENDING
        and lb.pending_since is not None
        and (now - lb.pending_since).total_seconds() > settings.pending_timeout
    ):
        late = ", ".join(sorted(n.name for n in behind))
        reason = (
            f"node(s) {late} did not apply revision {lb.revision} within "
            f"{settings.pending_timeout:g} s"
        )
        _fail(session, lb, reason, in_hand)
    return lb.provisioning_status


def unsettled_query() -> Select[LoadBalancer]:
    """The load balancers that are not ACTIVE, locked in id order, read afresh."""
    # 'ACTIVE' written out, not bound: the partial index ix_load_balancers_unsettled (the few
    # not ACTIVE) only serves a query whose condition is its own, and a bound value is not
    # (PostgreSQL's generic plans of prepared statements). tests/api/test_query_plans.py
    # checks that both databases use it.
    return (
        select(LoadBalancer)
        .where(LoadBalancer.provisioning_status != literal_column("'ACTIVE'"))
        .order_by(LoadBalancer.id)
        .with_for_update(of=LoadBalancer)
        .execution_options(populate_existing=True)
    )


def refresh_pending(
    session: Session,
    settings: ControllerSettings,
    reached: tuple[int, int] | None = None,
    named: Collection[str] = (),
) -> int:
    """Re-derives every load balancer that is not ACTIVE; returns how many changed.

    reached=(before, after): for a node's delta report that moved its applied position from
    before to after, only those it can settle: the ones whose revision it reached now, and
    those it named (errors, digests, removals: an error that went). A report then costs
    what it settles: re-deriving the whole backlog on every report made each one cost more
    the further the agents fell behind (100 pending at 10,000 load balancers under churn).
    Whatever else settles (a node died, a timeout) is the background tick's, which reads
    them all.

    The rows are locked before the nodes are read. Two nodes that report the same change at
    once would otherwise each read the other's applied position from before its commit,
    neither would settle the load balancer, and it would wait for the next background tick
    (up to a second). With the lock the second waits for the first's commit and then reads
    both positions. Id order: reports and the tick never deadlock.

    The lock order of every transaction: load balancer rows (id order), then the placement
    planner's lock (services/placement.py), then the feed's (at commit, services/feed.py).
    Writers lock their load balancer and then place it, so a transaction that has taken the
    planner's lock (placement.reconcile) must not call this afterwards: commit first."""
    now = utcnow()
    query = unsettled_query()
    if reached is not None:
        low, high = reached
        reach = []
        if high > low:
            reach.append(and_(LoadBalancer.revision_seq > low, LoadBalancer.revision_seq <= high))
        if named:
            reach.append(LoadBalancer.id.in_(sorted(named)))
        if not reach:
            return 0
        query = query.where(or_(*reach))
    lbs = list(session.scalars(query))
    if not lbs:
        return 0
    alive = alive_nodes(session, settings, now, fresh=True)
    changed = 0
    for lb in lbs:
        before = lb.provisioning_status
        if refresh(session, lb, settings, now, alive) != before:
            changed += 1
    return changed


# ---- operating status ---------------------------------------------------------------------


def member_operating_status(member: Any, monitored: bool) -> str:
    pool = getattr(member, "pool", None)
    if pool is not None and _unmeasured(pool.load_balancer):
        return "NO_MONITOR"  # Octavia's noop: nothing monitors them, disabled or not
    if not member.admin_state_up:
        return "OFFLINE"
    if not monitored or member.health == "UNKNOWN":
        return "DRAINING" if member.weight == 0 else "NO_MONITOR"
    if member.health == "DOWN":
        return "ERROR"
    return "DRAINING" if member.weight == 0 else "ONLINE"


def _unmeasured(lb: Any) -> bool:
    """The noop provider's objects: nothing serves or measures them, so, as in Octavia, they
    never go ONLINE."""
    return bool(lb.provider == "noop")


def pool_operating_status(pool: Any) -> str:
    if not pool.admin_state_up or _unmeasured(pool.load_balancer):
        return "OFFLINE"
    monitored = pool.healthmonitor is not None and pool.healthmonitor.admin_state_up
    states = [member_operating_status(m, monitored) for m in pool.members if m.admin_state_up]
    down = sum(1 for s in states if s == "ERROR")
    if states and down == len(states):
        return "ERROR"
    return "DEGRADED" if down else "ONLINE"


def listener_operating_status(listener: Any, pools: dict[str, Any]) -> str:
    if not listener.admin_state_up or _unmeasured(listener.load_balancer):
        return "OFFLINE"
    pool = pools.get(listener.default_pool_id) if listener.default_pool_id else None
    return pool_operating_status(pool) if pool is not None else "ONLINE"


def lb_operating_status(lb: LoadBalancer) -> str:
    if not lb.admin_state_up or _unmeasured(lb):
        return "OFFLINE"
    pools = {p.id: p for p in lb.pools}
    states = [listener_operating_status(li, pools) for li in lb.listeners]
    if any(s == "ERROR" for s in states) and all(s in ("ERROR", "OFFLINE") for s in states):
        return "ERROR"
    if any(s in ("ERROR", "DEGRADED") for s in states):
        return "DEGRADED"
    return "ONLINE"
