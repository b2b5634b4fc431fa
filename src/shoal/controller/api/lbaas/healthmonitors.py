"""Health monitors: one per pool."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from shoal.controller import views
from shoal.controller.api.common import list_collection, written
from shoal.controller.api.deps import CurrentPrincipal, IfMatch, State
from shoal.controller.api.lbaas._shared import apply_fields, lb_id_for, renderer
from shoal.controller.db.models import HealthMonitor, Pool
from shoal.controller.errors import Conflict
from shoal.controller.schemas.healthmonitor import (
    HealthMonitorCreateBody,
    HealthMonitorUpdateBody,
)

router = APIRouter(tags=["healthmonitors"])
HTTP_DEFAULTS = {"http_method": "GET", "url_path": "/", "expected_codes": "200"}
_render = renderer(HealthMonitor, views.healthmonitor, "healthmonitor")


@router.get("/healthmonitors")
def list_healthmonitors(
    request: Request, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    with state.db.read() as session:
        query = select(HealthMonitor)
        return list_collection(
            session, HealthMonitor, principal, request, query, views.healthmonitor, "healthmonitors"
        )


@router.post("/healthmonitors", status_code=201)
def create_healthmonitor(
    body: HealthMonitorCreateBody, state: State, principal: CurrentPrincipal, expect: IfMatch
) -> Response:
    spec = body.healthmonitor
    lb_id = lb_id_for(state, principal, Pool, spec.pool_id)
    with state.writer.change(lb_id, principal, action="create", expect_revision=expect) as ctx:
        pool = next(p for p in ctx.lb.pools if p.id == spec.pool_id)
        if pool.healthmonitor is not None:
            raise Conflict(f"pool {pool.id} already has health monitor {pool.healthmonitor.id}")
        hm = HealthMonitor(
            project_id=ctx.lb.project_id,
            type=spec.type,
            delay=spec.delay,
            timeout=spec.timeout,
            max_retries=spec.max_retries,
        )
        apply_fields(hm, spec.model_dump(exclude={"pool_id"}))
        if spec.type in ("HTTP", "HTTPS"):
            for key, default in HTTP_DEFAULTS.items():
                if getattr(hm, key) is None:
                    setattr(hm, key, default)
        if hm.max_retries_down is None:
            hm.max_retries_down = 3
        pool.healthmonitor = hm
        ctx.session.flush()
        ctx.pending(hm, "PENDING_CREATE")
        ctx.touched.add("healthmonitor")
        ctx.resource = ("healthmonitor", hm.id)
    return _render(state, principal, hm.id, 201)


@router.get("/healthmonitors/{hm_id}")
def get_healthmonitor(
    hm_id: str, request: Request, state: State, principal: CurrentPrincipal
) -> Response:
    return _render(state, principal, hm_id, request=request)


@router.put("/healthmonitors/{hm_id}")
def update_healthmonitor(
    hm_id: str,
    body: HealthMonitorUpdateBody,
    state: State,
    principal: CurrentPrincipal,
    expect: IfMatch,
) -> Response:
    lb_id = lb_id_for(state, principal, HealthMonitor, hm_id)
    with state.writer.change(lb_id, principal, action="update", expect_revision=expect) as ctx:
        hm = next(
            p.healthmonitor
            for p in ctx.lb.pools
            if p.healthmonitor is not None and p.healthmonitor.id == hm_id
        )
        apply_fields(hm, body.healthmonitor.model_dump(exclude_unset=True))
        ctx.pending(hm)
        ctx.resource = ("healthmonitor", hm_id)
    return _render(state, principal, hm_id)


@router.delete("/healthmonitors/{hm_id}", status_code=204)
def delete_healthmonitor(
    hm_id: str, state: State, principal: CurrentPrincipal, expect: IfMatch
) -> Response:
    lb_id = lb_id_for(state, principal, HealthMonitor, hm_id)
    with state.writer.change(lb_id, principal, action="delete", expect_revision=expect) as ctx:
        pool = next(
            p for p in ctx.lb.pools if p.healthmonitor is not None and p.healthmonitor.id == hm_id
        )
        pool.healthmonitor = None
        for m in pool.members:  # unmonitored: health is unknown again
            m.health, m.health_streak = "UNKNOWN", 0
        ctx.resource = ("healthmonitor", hm_id)
    return written(204, ctx.revision)
