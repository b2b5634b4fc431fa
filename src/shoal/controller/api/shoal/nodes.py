"""Nodes and the agents' side of the API: register, long-poll the desired state, report what
was applied (or why not), health-check results, counters and events. Every agent call needs
the node's own credential (see enrollments): it acts for its node only, registers it only as
enrolled, and reports only on what that node serves or was asked to check."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field, StrictBool, StrictInt, model_validator
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from starlette.concurrency import run_in_threadpool

from shoal.controller.api.deps import CurrentPrincipal, State
from shoal.controller.auth import Principal
from shoal.controller.db.models import (
    Event,
    LoadBalancer,
    Member,
    Node,
    NodeLbError,
    Placement,
    Pool,
    utcnow,
)
from shoal.controller.errors import Forbidden, NotFound
from shoal.controller.schemas.common import Name, OctaviaModel
from shoal.controller.services import (
    desired,
    duties,
    enrollment,
    feed,
    health,
    placement,
    reports,
    status,
)
from shoal.controller.services.writes import current_seq
from shoal.wire.feed import SCHEMA_VERSION
from shoal.wire.report import NodeReport

router = APIRouter(tags=["nodes"])


class NodeRegister(OctaviaModel):
    name: Name = Field(min_length=1)
    role: Literal["l4", "l7"]
    cluster: Name = "default"
    address: str | None = Field(default=None, max_length=64)
    # Where the L4 tier sends an L7 node its VIPs' packets (and checks it); default: address.
    data_address: str | None = Field(default=None, max_length=64)
    capacity: StrictInt = Field(default=100, ge=1, le=1_000_000)
    version: str | None = Field(default=None, max_length=64)


class NodeUpdate(OctaviaModel):
    admin_state: Literal["ACTIVE", "DRAINING"] | None = None
    capacity: StrictInt | None = Field(default=None, ge=1, le=1_000_000)


class HealthResult(OctaviaModel):
    """One check of a member, or (from L4 nodes) of an L7 node's monitor endpoint."""

    member_id: str | None = Field(default=None, max_length=36)
    node_id: str | None = Field(default=None, max_length=36)
    ok: StrictBool
    detail: str = Field(default="", max_length=1000)
    # The checker applied rise/fall itself (an L7 node's HAProxy): the state is final.
    decided: StrictBool = False

    @model_validator(mode="after")
    def _one_subject(self) -> HealthResult:
        if (self.member_id is None) == (self.node_id is None):
            raise ValueError("a result names exactly one of member_id and node_id")
        return self


class HealthReport(OctaviaModel):
    results: list[HealthResult] = Field(max_length=100000)


class NodeEvent(OctaviaModel):
    kind: str = Field(min_length=1, max_length=64)
    severity: Literal["info", "warning", "error"] = "info"
    message: str = Field(default="", max_length=4000)
    load_balancer_id: str | None = Field(default=None, max_length=36)
    detail: dict[str, Any] = Field(default_factory=dict)


class EventsBody(OctaviaModel):
    events: list[NodeEvent] = Field(max_length=10000)


def node_view(
    node: Node,
    settings: Any,
    now: dt.datetime | None = None,
    *,
    digests: dict[str, Any],
    routing: bool = False,
) -> dict[str, Any]:
    """digests: the node's table digests (reports.digests_by_node). routing: with the
    node's BGP/BFD sessions as it last reported them (the operators' view: admins and global
    observers)."""
    now = now or utcnow()
    alive = node.last_seen >= status.liveness_cutoff(settings, now)
    return {
        "id": node.id,
        "name": node.name,
        "role": node.role,
        "cluster": node.cluster,
        "address": node.address,
        "data_address": node.data_address,
        "capacity": node.capacity,
        "version": node.version,
        "admin_state": node.admin_state,
        "operating_status": "ONLINE" if alive else "OFFLINE",
        "health": node.health,
        "registered_at": node.registered_at.strftime("%Y-%m-%dT%H:%M:%S"),
        "last_seen": node.last_seen.strftime("%Y-%m-%dT%H:%M:%S"),
        "applied_seq": node.applied_seq,
        "digests": digests,
        **({"routing": (node.counters or {}).get("routing")} if routing else {}),
    }


def _digests(session: Any, node: Node) -> dict[str, Any]:
    return reports.digests_by_node(session, [node.id])[node.id]


def _node(session: Any, node_id: str) -> Node:
    node = session.get(Node, node_id)
    if node is None:
        raise NotFound.of("Node", node_id)
    return node  # type: ignore[no-any-return]


def _own_node(session: Any, node_id: str, principal: Principal) -> Node:
    """The node, if the caller is that node's agent."""
    grant = principal.require_node()
    node = _node(session, node_id)
    principal.require_node(node.name)
    if node.role != grant.role:  # registered before enrolment as something else
        raise Forbidden(f"node {node.name} is enrolled as {grant.role}, not {node.role}")
    return node


def _refuse(what: str, ids: set[str], node: Node) -> None:
    if ids:
        shown = ", ".join(sorted(ids)[:5])
        raise Forbidden(f"node {node.name} does not serve or check {what} {shown}")


@router.post("/nodes", status_code=201)
def register_node(body: NodeRegister, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    """Registers a node, or re-registers it by name after a restart (same id): only the
    caller's own node, with the role, cluster and addresses it was enrolled with."""
    fields = enrollment.registration(principal.require_node(), body.model_dump())
    with state.db.write() as session:
        node = session.scalar(select(Node).where(Node.name == body.name))
        if node is None:
            node = Node(name=body.name, role=body.role)
            session.add(node)
        for key, value in fields.items():
            setattr(node, key, value)
        node.last_seen = utcnow()
        session.flush()
        session.add(
            Event(
                node_id=node.id,
                kind="node_registered",
                message=f"{body.role} node {body.name} registered",
            )
        )
        if body.role == "l7":
            placement.reconcile(session, state.settings)
        session.flush()
        # A node that joins moves health-check duties: tell the agents now, not at the
        # next background round.
        feed.note_live_nodes(
            session, (n.id for n in status.alive_nodes(session, state.settings, utcnow()))
        )
        view = node_view(node, state.settings, digests=_digests(session, node))
    return {"node": view}  # what it changed wakes the agents at commit (services/feed)


@router.get("/nodes")
def list_nodes(
    state: State, principal: CurrentPrincipal, role: Literal["l4", "l7"] | None = None
) -> dict[str, Any]:
    _require_fleet_reader(principal)
    with state.db.read() as session:
        query = select(Node).order_by(Node.name)
        if role:
            query = query.where(Node.role == role)
        now = utcnow()
        nodes = list(session.scalars(query))
        digests = reports.digests_by_node(session, [n.id for n in nodes])
        return {
            "nodes": [
                node_view(n, state.settings, now, digests=digests[n.id], routing=True)
                for n in nodes
            ]
        }


def _require_fleet_reader(principal: Principal) -> None:
    """Reading nodes: admins, and global observers (they read every project already)."""
    if not principal.reads_all_projects:
        raise Forbidden("this needs the admin or the global observer role")


@router.get("/nodes/{node_id}")
def get_node(node_id: str, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    _require_fleet_reader(principal)
    with state.db.read() as session:
        node = _node(session, node_id)
        view = node_view(node, state.settings, digests=_digests(session, node), routing=True)
        return {"node": view}


@router.put("/nodes/{node_id}")
def update_node(
    node_id: str, body: NodeUpdate, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Drain (admin_state DRAINING) or return a node to service. A drained L4 node
    withdraws its VIPs and keeps forwarding the flows it has; a drained L7 node's load
    balancers move to other nodes of its cluster while it finishes what it serves
    (l7_drain_seconds)."""
    principal.require_admin()
    with state.db.write() as session:
        node = _node(session, node_id)
        for key, value in body.model_dump(exclude_none=True).items():
            setattr(node, key, value)
        session.add(
            Event(
                node_id=node.id,
                kind="node_updated",
                message=f"node {node.name}: {body.model_dump(exclude_none=True)}",
            )
        )
        feed.record(session, "node")  # duties and drain state: every agent takes a snapshot
        if node.role == "l7":
            placement.reconcile(session, state.settings)
        session.flush()
        view = node_view(node, state.settings, digests=_digests(session, node))
    with state.db.write() as session:  # after the planner's lock is let go: the lock order
        status.refresh_pending(session, state.settings)
    return {"node": view}


@router.delete("/nodes/{node_id}", status_code=204)
def delete_node(node_id: str, state: State, principal: CurrentPrincipal) -> Response:
    principal.require_admin()
    with state.db.write() as session:
        node = _node(session, node_id)
        session.delete(node)
        feed.record(session, "node")
        state.pacer.forget(node_id)
        session.flush()
        if node.role == "l7":
            placement.reconcile(session, state.settings)
    with state.db.write() as session:  # after the planner's lock is let go: the lock order
        status.refresh_pending(session, state.settings)
    return Response(status_code=204)


def _desired(state: State, node_id: str) -> str:
    with state.db.write() as session:
        node = _node(session, node_id)
        return desired.build(session, node, state.settings)


@router.get("/nodes/{node_id}/desired-state")
async def desired_state(
    node_id: str,
    state: State,
    principal: CurrentPrincipal,
    since: Annotated[int, Query(ge=-1, le=2**62)] = -1,
    timeout: Annotated[float, Query(ge=0, le=300)] = 0,
) -> Response:
    """Everything this node must run. With since=S and timeout=T, answers as soon as the
    change feed is past S, or after T seconds (at most a third of node_dead_after) with
    {"seq": S, "changed": false}."""
    await run_in_threadpool(_check_own, state, node_id, principal)
    if since >= 0:
        # A node that waits here is alive: the wait is cut to a third of node_dead_after, so
        # the agent's next poll (or this answer) comes before the controller would count it
        # dead, whatever wait the agent asked for.
        limit = min(timeout, state.settings.long_poll_max, state.settings.node_dead_after / 3)
        seq = await state.notifier.wait_beyond(since, limit)
        if seq <= since:
            await run_in_threadpool(_touch, state, node_id)
            return Response(f'{{"seq":{since},"changed":false}}', media_type="application/json")
    body = await run_in_threadpool(_desired, state, node_id)
    return Response(body, media_type="application/json")


@router.get("/nodes/{node_id}/feed")
async def node_feed(
    node_id: str,
    state: State,
    principal: CurrentPrincipal,
    position: Annotated[int, Query(ge=0, le=2**62)] = 0,
    timeout: Annotated[float, Query(ge=0, le=300)] = 0,
) -> Response:
    """What changed for this node since `position` (a `shoal.wire.feed.Feed`): the changed
    load balancers in full and tombstones, in order; a snapshot when position is 0, unknown
    or compacted away. With timeout=T, waits up to T seconds (at most a third of
    node_dead_after) for a change, then answers {"seq": position, "changed": false}."""
    # Without a timeout there is nothing to wait for: the answer's own transaction checks
    # the caller, so the head is not read first.
    head = await run_in_threadpool(_check_own, state, node_id, principal) if timeout > 0 else -1
    if timeout > 0 and position == head:  # nothing new yet: wait for it
        limit = min(timeout, state.settings.long_poll_max, state.settings.node_dead_after / 3)
        seq = await state.notifier.wait_beyond(position, limit)
        if seq <= position:
            await run_in_threadpool(_touch, state, node_id)
            return Response(
                f'{{"schema_version":{SCHEMA_VERSION},"seq":{position},"changed":false}}',
                media_type="application/json",
            )
    # Under churn: at most one answer with changes per node per feed_min_interval, holding
    # every change made meanwhile (an idle node's first one is not delayed).
    pause = state.pacer.delay(node_id)
    if pause > 0:
        await asyncio.sleep(pause)
    body = await run_in_threadpool(_feed, state, node_id, position, principal)
    state.pacer.answered(node_id)
    return Response(body, media_type="application/json")


def _feed(state: State, node_id: str, position: int, principal: Principal) -> str:
    with state.db.write() as session:
        node = _own_node(session, node_id, principal)
        answer = desired.changes(session, node, state.settings, position, state.settings.feed_batch)
        return answer if answer is not None else desired.build(session, node, state.settings)


def _check_own(state: State, node_id: str, principal: Principal) -> int:
    """The feed's head, if the caller is this node's agent."""
    with state.db.read() as session:
        _own_node(session, node_id, principal)
        return feed.head(session)


def _touch(state: State, node_id: str) -> None:
    with state.db.write() as session:
        _node(session, node_id).last_seen = utcnow()


@router.post("/nodes/{node_id}/report", status_code=204)
def report(node_id: str, body: NodeReport, state: State, principal: CurrentPrincipal) -> Response:
    with state.db.write() as session:
        node = _own_node(session, node_id, principal)
        # Every load balancer whose rows the report writes: an L7 node only its placements.
        lb_ids = {e.load_balancer_id for e in body.errors} | set(body.digests) | set(body.removed)
        _refuse("load balancer(s)", duties.foreign_lbs(session, node, lb_ids), node)
        head = current_seq(session)
        # The node's columns go out in one UPDATE at the flush below, not one per query.
        with session.no_autoflush:
            node.last_seen = utcnow()
            before = node.applied_seq
            node.applied_seq = max(node.applied_seq, min(body.seq, head))
            # An L7 node that now serves new placements: the L4 tier may send it new flows.
            ready = (
                list(
                    session.scalars(
                        select(Placement.load_balancer_id).where(
                            Placement.node_id == node.id,
                            Placement.ready_seq > before,
                            Placement.ready_seq <= node.applied_seq,
                        )
                    )
                )
                if node.role == "l7"
                else []
            )
            if ready:
                feed.record(session, "placement", ready)
            reports.store_tables(session, node, body)
            reports.store_counters(node, body)
            if body.version:
                node.version = body.version
        session.flush()
        # A delta settles what it reached or named; a whole report (a start) looks at all.
        reached = None if body.base is None else (before, node.applied_seq)
        status.refresh_pending(session, state.settings, reached, lb_ids)
    return Response(status_code=204)


@router.post("/nodes/{node_id}/health", status_code=204)
def report_health(
    node_id: str, body: HealthReport, state: State, principal: CurrentPrincipal
) -> Response:
    """Check results; the controller decides member health and publishes changes. Results
    for subjects this node's role never checks are refused; those now assigned to another
    node (this one has not seen the change yet) are ignored."""
    with state.db.write() as session:
        node = _own_node(session, node_id, principal)
        now = utcnow()
        if node.role != "l7" and any(r.decided for r in body.results):
            raise Forbidden("only L7 nodes report decided results (HAProxy's rise and fall)")
        ids = {r.member_id for r in body.results if r.member_id}
        peers = {r.node_id for r in body.results if r.node_id}
        member_checks = duties.member_checks(session, node, ids, state.settings, now)
        peer_checks = duties.node_checks(session, node, peers, state.settings, now)
        _refuse("member(s)", member_checks.forbidden, node)
        _refuse("node(s)", peer_checks.forbidden, node)
        node.last_seen = now
        members = {
            m.id: m
            for m in session.scalars(
                select(Member)
                .where(Member.id.in_(ids))
                .options(selectinload(Member.pool).selectinload(Pool.healthmonitor))
            )
        }
        for result in body.results:
            if (result.member_id or result.node_id) in (
                member_checks.elsewhere | peer_checks.elsewhere
            ):
                continue
            if result.node_id is not None:
                health.record_node_result(
                    session, result.node_id, result.ok, result.detail, state.settings
                )
                continue
            member = members.get(result.member_id or "")
            if member is not None:
                health.record_result(
                    session,
                    member,
                    health.CheckResult(member.id, result.ok, result.detail),
                    decided=result.decided,
                )
        session.flush()
    return Response(status_code=204)


@router.post("/nodes/{node_id}/events", status_code=204)
def post_events(
    node_id: str, body: EventsBody, state: State, principal: CurrentPrincipal
) -> Response:
    with state.db.write() as session:
        node = _own_node(session, node_id, principal)
        lb_ids = {ev.load_balancer_id for ev in body.events if ev.load_balancer_id}
        _refuse("load balancer(s)", duties.foreign_lbs(session, node, lb_ids), node)
        node.last_seen = utcnow()
        projects = (
            dict(
                session.execute(
                    select(LoadBalancer.id, LoadBalancer.project_id).where(
                        LoadBalancer.id.in_(lb_ids)
                    )
                ).all()
            )
            if lb_ids
            else {}
        )
        for ev in body.events:
            session.add(
                Event(
                    node_id=node.id,
                    load_balancer_id=ev.load_balancer_id,
                    project_id=projects.get(ev.load_balancer_id or ""),
                    kind=ev.kind,
                    severity=ev.severity,
                    message=ev.message or f"{node.name}: {ev.kind}",
                    detail=ev.detail,
                )
            )
    return Response(status_code=204)


@router.get("/loadbalancers/{lb_id}/nodes")
def lb_nodes(lb_id: str, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    """Where a load balancer runs: per serving node (every L4 node; for an L7 load balancer
    also the L7 nodes it is placed on, with the placement's state), whether it applied the
    latest revision, its error if any, and the digests of the Maglev tables it built.
    `tables_agree` says whether every node built the same tables (they must: the same seed,
    the same inputs)."""
    with state.db.read() as session:
        lb = session.get(LoadBalancer, lb_id)
        if lb is None or not principal.can_read(lb.project_id):
            raise NotFound.of("Load Balancer", lb_id)
        now = utcnow()
        errors = {
            e.node_id: e
            for e in session.scalars(
                select(NodeLbError).where(NodeLbError.load_balancer_id == lb_id)
            )
        }
        placements = {
            node_id: state_
            for node_id, state_ in session.execute(
                select(Placement.node_id, Placement.state).where(
                    Placement.load_balancer_id == lb_id
                )
            )
        }
        serving = status.serving_nodes(session, lb, state.settings, now)
        tables = reports.lb_digests(session, lb_id)
        out, seen = [], []
        for node in serving:
            digests = tables.get(node.id) or {}
            err = errors.get(node.id)
            out.append(
                {
                    "node_id": node.id,
                    "name": node.name,
                    "role": node.role,
                    "cluster": node.cluster,
                    "placement": placements.get(node.id),
                    "applied": node.applied_seq >= lb.revision_seq and err is None,
                    "error": err.reason if err is not None else None,
                    "table_digests": digests,
                }
            )
            if digests:
                seen.append(digests)
        agree = all(d == seen[0] for d in seen)
        return {
            "load_balancer_id": lb_id,
            "revision": lb.revision,
            "nodes": out,
            "tables_agree": agree,
        }
