"""Load balancers: CRUD, status tree, statistics, failover."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from shoal.controller import views
from shoal.controller.api.common import etag_response, list_collection, written
from shoal.controller.api.deps import CurrentPrincipal, IfMatch, State
from shoal.controller.api.lbaas._shared import get_visible, target_project
from shoal.controller.db.models import Listener, LoadBalancer, Node, Pool
from shoal.controller.errors import BadRequest, NotFound
from shoal.controller.schemas.loadbalancer import LoadBalancerCreateBody, LoadBalancerUpdateBody
from shoal.controller.services import flavors, status
from shoal.controller.services.writes import load_tree

router = APIRouter(tags=["loadbalancers"])


def _tree_options() -> list[Any]:
    return [
        selectinload(LoadBalancer.listeners).selectinload(Listener.l7policies),
        selectinload(LoadBalancer.pools).selectinload(Pool.members),
        selectinload(LoadBalancer.pools).selectinload(Pool.healthmonitor),
    ]


def render(
    state: State,
    principal: CurrentPrincipal,
    lb_id: str,
    status_code: int = 200,
    request: Request | None = None,
) -> Response:
    with state.db.read() as session:
        lb = load_tree(session, lb_id)
        if lb is None or not principal.can_read(lb.project_id):
            raise NotFound.of("Load Balancer", lb_id)
        body = {"loadbalancer": views.loadbalancer(lb)}
        return etag_response(body, lb.revision, status_code, request)


@router.get("/loadbalancers")
def list_loadbalancers(
    request: Request, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    with state.db.read() as session:
        query = select(LoadBalancer).options(*_tree_options())
        return list_collection(
            session, LoadBalancer, principal, request, query, views.loadbalancer, "loadbalancers"
        )


@router.post("/loadbalancers", status_code=201)
def create_loadbalancer(
    body: LoadBalancerCreateBody, state: State, principal: CurrentPrincipal
) -> Response:
    spec = body.loadbalancer
    project = target_project(principal, spec.project_id or spec.tenant_id)
    with state.db.read() as session:
        choice = flavors.choose(
            session, state.settings, spec.flavor_id, spec.provider, spec.availability_zone
        )
    provider, kind = choice.provider, choice.kind
    with state.writer.create(
        principal,
        project,
        spec.vip_address,
        spec.vip_subnet_id,
        vip_network=spec.vip_network_id,
        any_subnet=not provider.agents,
    ) as ctx:
        lb = ctx.lb
        lb.provider = provider.name
        lb.name, lb.description, lb.admin_state_up = (
            spec.name,
            spec.description,
            spec.admin_state_up,
        )
        lb.kind, lb.flavor_id, lb.tags = kind, choice.flavor_id, spec.tags
        lb.vip_port_id = spec.vip_port_id
        if lb.vip_port_id is None and not provider.agents:
            # Octavia's noop network driver invents the VIP's port; clients check it is set.
            lb.vip_port_id = str(uuid.uuid4())
        lb.availability_zone = spec.availability_zone
    return render(state, principal, lb.id, 201)


@router.get("/loadbalancers/{lb_id}")
def get_loadbalancer(
    lb_id: str, request: Request, state: State, principal: CurrentPrincipal
) -> Response:
    return render(state, principal, lb_id, request=request)


@router.put("/loadbalancers/{lb_id}")
def update_loadbalancer(
    lb_id: str,
    body: LoadBalancerUpdateBody,
    state: State,
    principal: CurrentPrincipal,
    expect: IfMatch,
) -> Response:
    changes = body.loadbalancer.model_dump(exclude_unset=True, exclude={"vip_qos_policy_id"})
    with state.writer.change(lb_id, principal, action="update", expect_revision=expect) as ctx:
        for key, value in changes.items():
            if value is not None:
                setattr(ctx.lb, key, value)
        ctx.resource = ("loadbalancer", lb_id)
    return render(state, principal, lb_id)


@router.delete("/loadbalancers/{lb_id}", status_code=204)
def delete_loadbalancer(
    lb_id: str, state: State, principal: CurrentPrincipal, expect: IfMatch, cascade: bool = False
) -> Response:
    with state.writer.change(lb_id, principal, action="delete", expect_revision=expect) as ctx:
        if (ctx.lb.listeners or ctx.lb.pools) and not cascade:
            raise BadRequest(
                f"Cannot delete Load Balancer {lb_id} - it has children "
                "(listeners or pools); delete them first, or delete with cascade"
            )
        ctx.resource = ("loadbalancer", lb_id)
    return written(204, ctx.revision)


@router.put("/loadbalancers/{lb_id}/failover", status_code=202)
def failover_loadbalancer(lb_id: str, state: State, principal: CurrentPrincipal) -> Response:
    """Publishes the same configuration again as a new revision: every node re-applies it,
    which recovers a load balancer left in ERROR by a node that has since been fixed."""
    with state.writer.change(
        lb_id, principal, action="update", message="failover: re-apply the current configuration"
    ) as ctx:
        ctx.resource = ("loadbalancer", lb_id)
    return written(202, ctx.revision)


def _status_tree(lb: LoadBalancer) -> dict[str, Any]:
    pools = {p.id: p for p in lb.pools}

    def pool_entry(p: Pool) -> dict[str, Any]:
        hm = p.healthmonitor
        monitored = hm is not None and hm.admin_state_up
        entry: dict[str, Any] = {
            "id": p.id,
            "name": p.name,
            "provisioning_status": p.provisioning_status,
            "operating_status": status.pool_operating_status(p),
            "members": [
                {
                    "id": m.id,
                    "name": m.name,
                    "address": m.address,
                    "protocol_port": m.protocol_port,
                    "provisioning_status": m.provisioning_status,
                    "operating_status": status.member_operating_status(m, monitored),
                }
                for m in p.members
            ],
        }
        if hm is not None:
            entry["health_monitor"] = {
                "id": hm.id,
                "name": hm.name,
                "type": hm.type,
                "provisioning_status": hm.provisioning_status,
                "operating_status": "ONLINE" if hm.admin_state_up else "OFFLINE",
            }
        return entry

    listeners = []
    for li in lb.listeners:
        used = [pools[li.default_pool_id]] if li.default_pool_id in pools else []
        used += [
            pools[p.redirect_pool_id]
            for p in li.l7policies
            if p.redirect_pool_id in pools and pools[p.redirect_pool_id] not in used
        ]
        listeners.append(
            {
                "id": li.id,
                "name": li.name,
                "provisioning_status": li.provisioning_status,
                "operating_status": status.listener_operating_status(li, pools),
                "pools": [pool_entry(p) for p in used],
            }
        )
    return {
        "statuses": {
            "loadbalancer": {
                "id": lb.id,
                "name": lb.name,
                "provisioning_status": lb.provisioning_status,
                "operating_status": status.lb_operating_status(lb),
                "listeners": listeners,
            }
        }
    }


@router.get("/loadbalancers/{lb_id}/status")
def loadbalancer_status(lb_id: str, state: State, principal: CurrentPrincipal) -> Response:
    with state.db.read() as session:
        lb = load_tree(session, lb_id)
        if lb is None or not principal.can_read(lb.project_id):
            raise NotFound.of("Load Balancer", lb_id)
        body = _status_tree(lb)
        if lb.provisioning_reason:
            body["statuses"]["loadbalancer"]["provisioning_reason"] = lb.provisioning_reason
        return etag_response(body, lb.revision)


STAT_KEYS = ("bytes_in", "bytes_out", "active_connections", "total_connections", "request_errors")


def lb_stats(
    nodes: list[Node], lb_id: str, listener_id: str | None = None, kind: str = "l4"
) -> dict[str, int]:
    """Sums what the nodes reported for this load balancer (or one of its listeners): the
    L4 nodes for an L4 one, the L7 nodes (HAProxy's counters) for an L7 one."""
    total = dict.fromkeys(STAT_KEYS, 0)
    for node in nodes:
        if node.role != kind:
            continue
        per_lb = (node.lb_traffic or {}).get(lb_id, {})
        source = per_lb.get("listeners", {}).get(listener_id, {}) if listener_id else per_lb
        for key in STAT_KEYS:
            total[key] += int(source.get(key, 0))
    return total


@router.get("/loadbalancers/{lb_id}/stats")
def loadbalancer_stats(lb_id: str, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    with state.db.read() as session:
        lb = get_visible(session, LoadBalancer, lb_id, principal)
        nodes = list(session.scalars(select(Node)))
        return {"stats": lb_stats(nodes, lb_id, kind=lb.kind)}
