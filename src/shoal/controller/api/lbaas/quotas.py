"""Quotas per project."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import select

from shoal.controller.api.deps import CurrentPrincipal, State
from shoal.controller.auth import Principal
from shoal.controller.db.models import Quota
from shoal.controller.errors import NotFound
from shoal.controller.schemas.quota import QuotaUpdateBody
from shoal.controller.services import quotas

router = APIRouter(tags=["quotas"])


def _view(project_id: str, limits: dict[str, int]) -> dict[str, Any]:
    # Octavia shows both spellings of two of the keys.
    return {
        "project_id": project_id,
        **limits,
        "loadbalancer": limits["load_balancer"],
        "health_monitor": limits["healthmonitor"],
    }


@router.get("/quotas")
def list_quotas(state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    with state.db.read() as session:
        rows = session.scalars(select(Quota))
        projects = [r.project_id for r in rows if principal.can_read(r.project_id)]
        return {
            "quotas": [
                _view(p, quotas.limits(session, p, state.settings.quotas)) for p in projects
            ],
            "quotas_links": [],
        }


@router.get("/quotas/defaults")
def default_quotas(state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    limits = state.settings.quotas.model_dump()
    return {
        "quota": {
            **limits,
            "loadbalancer": limits["load_balancer"],
            "health_monitor": limits["healthmonitor"],
        }
    }


def _project(principal: Principal, ref: str) -> str:
    """A project id, or the caller's own project's name: `openstack loadbalancer quota show
    <name>` sends the name as it is when the user may not look projects up in Keystone."""
    if principal.project_name and ref == principal.project_name:
        return principal.project_id
    return ref


@router.get("/quotas/{project_id}")
def get_quota(project_id: str, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    project_id = _project(principal, project_id)
    if not principal.can_read(project_id):
        raise NotFound(f"Quota for project {project_id} could not be found.")
    with state.db.read() as session:
        return {
            "quota": _view(project_id, quotas.limits(session, project_id, state.settings.quotas))
        }


@router.get("/quotas/{project_id}/default")
def project_default_quota(
    project_id: str, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    return default_quotas(state, principal)


@router.put("/quotas/{project_id}", status_code=202)
def update_quota(
    project_id: str, body: QuotaUpdateBody, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    project_id = _project(principal, project_id)
    spec = body.quota
    values = {
        "load_balancer": spec.load_balancer
        if spec.load_balancer is not None
        else spec.loadbalancer,
        "listener": spec.listener,
        "pool": spec.pool,
        "member": spec.member,
        "l7policy": spec.l7policy,
        "l7rule": spec.l7rule,
        "healthmonitor": spec.healthmonitor
        if spec.healthmonitor is not None
        else spec.health_monitor,
    }
    with state.db.write() as session:
        row = session.get(Quota, project_id) or Quota(project_id=project_id)
        for key, value in values.items():
            if key in body.quota.model_fields_set or value is not None:
                setattr(row, key, value)
        session.add(row)
        session.flush()
        return {
            "quota": _view(project_id, quotas.limits(session, project_id, state.settings.quotas))
        }


@router.delete("/quotas/{project_id}", status_code=204)
def reset_quota(project_id: str, state: State, principal: CurrentPrincipal) -> Response:
    principal.require_admin()
    project_id = _project(principal, project_id)
    with state.db.write() as session:
        row = session.get(Quota, project_id)
        if row is not None:
            session.delete(row)
    return Response(status_code=204)
