"""Listeners."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from shoal.controller import views
from shoal.controller.api.common import list_collection, written
from shoal.controller.api.deps import CurrentPrincipal, IfMatch, State
from shoal.controller.api.lbaas._shared import apply_fields, lb_id_for, renderer
from shoal.controller.api.lbaas.loadbalancers import STAT_KEYS, lb_stats
from shoal.controller.db.models import Listener, LoadBalancer, Node
from shoal.controller.errors import Conflict
from shoal.controller.schemas.listener import ListenerCreateBody, ListenerUpdateBody
from shoal.controller.services.tree import port_space

router = APIRouter(tags=["listeners"])
CLEARABLE = frozenset({"default_pool_id", "default_tls_container_ref", "hsts_max_age"})
_render = renderer(Listener, views.listener, "listener")


@router.get("/listeners")
def list_listeners(request: Request, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    with state.db.read() as session:
        query = select(Listener).options(
            selectinload(Listener.load_balancer).selectinload(LoadBalancer.pools),
            selectinload(Listener.l7policies),
        )
        return list_collection(
            session, Listener, principal, request, query, views.listener, "listeners"
        )


@router.post("/listeners", status_code=201)
def create_listener(
    body: ListenerCreateBody, state: State, principal: CurrentPrincipal, expect: IfMatch
) -> Response:
    spec = body.listener
    l4 = port_space(spec.protocol)
    with state.writer.change(
        spec.loadbalancer_id, principal, action="create", expect_revision=expect
    ) as ctx:
        for other in ctx.lb.listeners:
            if other.protocol_port == spec.protocol_port and other.l4_protocol == l4:
                raise Conflict(
                    f"Another Listener on this Load Balancer is already using "
                    f"protocol_port {spec.protocol_port} ({other.id})"
                )
        li = Listener(
            project_id=ctx.lb.project_id,
            load_balancer_id=ctx.lb.id,
            protocol=spec.protocol,
            protocol_port=spec.protocol_port,
            l4_protocol=l4,
        )
        apply_fields(li, spec.model_dump(exclude={"protocol", "protocol_port", "loadbalancer_id"}))
        ctx.lb.listeners.append(li)
        ctx.session.flush()
        ctx.pending(li, "PENDING_CREATE")
        ctx.touched.add("listener")
        ctx.resource = ("listener", li.id)
    return _render(state, principal, li.id, 201)


@router.get("/listeners/{listener_id}")
def get_listener(
    listener_id: str, request: Request, state: State, principal: CurrentPrincipal
) -> Response:
    return _render(state, principal, listener_id, request=request)


@router.put("/listeners/{listener_id}")
def update_listener(
    listener_id: str,
    body: ListenerUpdateBody,
    state: State,
    principal: CurrentPrincipal,
    expect: IfMatch,
) -> Response:
    lb_id = lb_id_for(state, principal, Listener, listener_id)
    with state.writer.change(lb_id, principal, action="update", expect_revision=expect) as ctx:
        li = next(x for x in ctx.lb.listeners if x.id == listener_id)
        apply_fields(li, body.listener.model_dump(exclude_unset=True), CLEARABLE)
        ctx.pending(li)
        ctx.resource = ("listener", listener_id)
    return _render(state, principal, listener_id)


@router.delete("/listeners/{listener_id}", status_code=204)
def delete_listener(
    listener_id: str, state: State, principal: CurrentPrincipal, expect: IfMatch
) -> Response:
    lb_id = lb_id_for(state, principal, Listener, listener_id)
    with state.writer.change(lb_id, principal, action="delete", expect_revision=expect) as ctx:
        li = next(x for x in ctx.lb.listeners if x.id == listener_id)
        ctx.lb.listeners.remove(li)
        ctx.resource = ("listener", listener_id)
    return written(204, ctx.revision)


@router.get("/listeners/{listener_id}/stats")
def listener_stats(listener_id: str, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    lb_id = lb_id_for(state, principal, Listener, listener_id)
    with state.db.read() as session:
        nodes = list(session.scalars(select(Node)))
        kind = session.scalar(select(LoadBalancer.kind).where(LoadBalancer.id == lb_id))
        stats = lb_stats(nodes, lb_id, listener_id, kind=kind or "l4")
    return {"stats": {k: stats[k] for k in STAT_KEYS}}
