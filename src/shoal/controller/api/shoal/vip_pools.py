"""VIP pools: admins define them (a prefix, and the projects that may use it); tenants list
the pools they may take VIPs from."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shoal.addresses import parse_network
from shoal.controller.api.common import name_taken
from shoal.controller.api.deps import CurrentPrincipal, State
from shoal.controller.auth import Principal
from shoal.controller.db.models import LoadBalancer, VipPool, new_id, utcnow
from shoal.controller.errors import Conflict, NotFound
from shoal.controller.schemas.vip_pool import VipPoolCreateBody, VipPoolUpdateBody
from shoal.controller.services import vips
from shoal.controller.views import ts

router = APIRouter(tags=["vip-pools"])


def view(pool: VipPool, principal: Principal) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": pool.id,
        "name": pool.name,
        "description": pool.description,
        "network_id": pool.network_id,
        "cidr": pool.cidr,
        "ip_version": pool.ip_version,
        "shared": pool.shared,
        "created_at": ts(pool.created_at),
        "updated_at": ts(pool.updated_at),
    }
    if principal.is_admin:  # a tenant does not learn which other projects exist
        doc["project_ids"] = list(pool.project_ids or [])
    return doc


def _visible(session: Session, principal: Principal, ref: str) -> VipPool:
    pool = session.get(VipPool, ref) or session.scalar(select(VipPool).where(VipPool.name == ref))
    if pool is None or not (
        principal.is_admin or pool in vips.usable_pools(session, principal.project_id)
    ):
        raise NotFound.of("VIP pool", ref)
    return pool


@router.get("/vip-pools")
def list_vip_pools(state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    with state.db.read() as session:
        if principal.is_admin:
            pools = list(session.scalars(select(VipPool).order_by(VipPool.created_at)))
        else:
            pools = vips.usable_pools(session, principal.project_id)
        return {"vip_pools": [view(p, principal) for p in pools]}


@router.post("/vip-pools", status_code=201)
def create_vip_pool(
    body: VipPoolCreateBody, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    spec = body.vip_pool
    cidr = parse_network(spec.cidr)
    with state.db.write() as session:
        vips.serialize(session)  # two overlapping pools created at once: one wins
        vips.check_new_pool(session, cidr, spec.name)
        pool_id = new_id()
        pool = VipPool(
            id=pool_id,
            name=spec.name,
            description=spec.description,
            network_id=spec.network_id or pool_id,
            cidr=str(cidr),
            ip_version=cidr.version,
            shared=spec.shared,
            project_ids=sorted(set(spec.project_ids)),
        )
        session.add(pool)
        session.flush()
        return {"vip_pool": view(pool, principal)}


@router.get("/vip-pools/{ref}")
def get_vip_pool(ref: str, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    with state.db.read() as session:
        return {"vip_pool": view(_visible(session, principal, ref), principal)}


@router.put("/vip-pools/{ref}")
def update_vip_pool(
    ref: str, body: VipPoolUpdateBody, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Changes who may take new VIPs from the pool; load balancers keep the ones they have."""
    principal.require_admin()
    changes = body.vip_pool.model_dump(exclude_unset=True)
    with state.db.write() as session:
        pool = _visible(session, principal, ref)
        name = changes.get("name")
        if name_taken(session, VipPool, name, pool.name):
            raise Conflict(f"a VIP pool named {name} already exists")
        for key, value in changes.items():
            if value is not None:
                setattr(pool, key, sorted(set(value)) if key == "project_ids" else value)
        pool.updated_at = utcnow()
        session.flush()
        return {"vip_pool": view(pool, principal)}


@router.delete("/vip-pools/{ref}", status_code=204)
def delete_vip_pool(ref: str, state: State, principal: CurrentPrincipal) -> Response:
    principal.require_admin()
    with state.db.write() as session:
        pool = _visible(session, principal, ref)
        used = session.scalar(
            select(func.count())
            .select_from(LoadBalancer)
            .where(LoadBalancer.vip_subnet_id.in_([pool.id, pool.name]))
        )
        if used:
            raise Conflict(
                f"VIP pool {pool.name} still holds the VIPs of {used} load balancer(s): "
                "delete them first"
            )
        session.delete(pool)
    return Response(status_code=204)
