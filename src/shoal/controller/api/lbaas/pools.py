"""Pools."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from shoal.controller import views
from shoal.controller.api.common import list_collection, written
from shoal.controller.api.deps import CurrentPrincipal, IfMatch, State
from shoal.controller.api.lbaas._shared import apply_fields, lb_id_for, renderer
from shoal.controller.db.models import Listener, LoadBalancer, Pool
from shoal.controller.errors import BadRequest, Conflict
from shoal.controller.schemas.pool import PoolCreateBody, PoolUpdateBody

router = APIRouter(tags=["pools"])
_render = renderer(Pool, views.pool, "pool")


@router.get("/pools")
def list_pools(request: Request, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    with state.db.read() as session:
        query = select(Pool).options(
            selectinload(Pool.load_balancer).selectinload(LoadBalancer.listeners),
            selectinload(Pool.members),
            selectinload(Pool.healthmonitor),
        )
        return list_collection(session, Pool, principal, request, query, views.pool, "pools")


@router.post("/pools", status_code=201)
def create_pool(
    body: PoolCreateBody, state: State, principal: CurrentPrincipal, expect: IfMatch
) -> Response:
    spec = body.pool
    if spec.listener_id:
        lb_id = lb_id_for(state, principal, Listener, spec.listener_id)
        if spec.loadbalancer_id and spec.loadbalancer_id != lb_id:
            raise BadRequest(
                f"listener {spec.listener_id} is not on load balancer {spec.loadbalancer_id}"
            )
    else:
        lb_id = str(spec.loadbalancer_id)
    with state.writer.change(lb_id, principal, action="create", expect_revision=expect) as ctx:
        pool = Pool(
            project_id=ctx.lb.project_id,
            load_balancer_id=ctx.lb.id,
            protocol=spec.protocol,
            lb_algorithm=spec.lb_algorithm,
        )
        apply_fields(
            pool, spec.model_dump(exclude={"listener_id", "loadbalancer_id", "session_persistence"})
        )
        pool.session_persistence = (
            spec.session_persistence.model_dump(exclude_none=True)
            if spec.session_persistence
            else None
        )
        ctx.lb.pools.append(pool)
        ctx.session.flush()
        if spec.listener_id:
            li = next(x for x in ctx.lb.listeners if x.id == spec.listener_id)
            if li.default_pool_id:
                raise Conflict(f"listener {li.id} already has default pool {li.default_pool_id}")
            li.default_pool_id = pool.id
            ctx.pending(li)
        ctx.pending(pool, "PENDING_CREATE")
        ctx.touched.add("pool")
        ctx.resource = ("pool", pool.id)
    return _render(state, principal, pool.id, 201)


@router.get("/pools/{pool_id}")
def get_pool(pool_id: str, request: Request, state: State, principal: CurrentPrincipal) -> Response:
    return _render(state, principal, pool_id, request=request)


@router.put("/pools/{pool_id}")
def update_pool(
    pool_id: str, body: PoolUpdateBody, state: State, principal: CurrentPrincipal, expect: IfMatch
) -> Response:
    lb_id = lb_id_for(state, principal, Pool, pool_id)
    changes = body.pool.model_dump(exclude_unset=True)
    with state.writer.change(lb_id, principal, action="update", expect_revision=expect) as ctx:
        pool = next(x for x in ctx.lb.pools if x.id == pool_id)
        if "session_persistence" in changes:
            sp = body.pool.session_persistence
            pool.session_persistence = sp.model_dump(exclude_none=True) if sp else None
            del changes["session_persistence"]
        apply_fields(pool, changes)
        ctx.pending(pool)
        ctx.resource = ("pool", pool_id)
    return _render(state, principal, pool_id)


@router.delete("/pools/{pool_id}", status_code=204)
def delete_pool(
    pool_id: str, state: State, principal: CurrentPrincipal, expect: IfMatch
) -> Response:
    lb_id = lb_id_for(state, principal, Pool, pool_id)
    with state.writer.change(lb_id, principal, action="delete", expect_revision=expect) as ctx:
        pool = next(x for x in ctx.lb.pools if x.id == pool_id)
        for li in ctx.lb.listeners:
            if li.default_pool_id == pool_id:
                li.default_pool_id = None
                ctx.pending(li)
            for policy in li.l7policies:
                if policy.redirect_pool_id == pool_id:
                    raise Conflict(f"pool {pool_id} is used by l7policy {policy.id}")
        ctx.lb.pools.remove(pool)
        ctx.resource = ("pool", pool_id)
    return written(204, ctx.revision)
