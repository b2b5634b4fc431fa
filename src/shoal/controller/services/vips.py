"""VIP addresses: given by the caller, or the lowest free address of a configured pool."""

from __future__ import annotations

import ipaddress

from sqlalchemy import select
from sqlalchemy.orm import Session

from shoal.controller.db.models import LoadBalancer
from shoal.controller.errors import BadRequest, Conflict
from shoal.controller.settings import ControllerSettings, VipPool

__all__ = ["allocate"]


def _pool(settings: ControllerSettings, pool_id: str | None) -> VipPool:
    if pool_id is None:
        return settings.vip_pools[0]
    for pool in settings.vip_pools:
        if pool_id in (pool.id, pool.name):
            return pool
    raise BadRequest(f"vip_subnet_id {pool_id} is not a VIP pool of this cloud")


def allocate(
    session: Session, settings: ControllerSettings, address: str | None, pool_id: str | None
) -> tuple[str, str]:
    """(address, pool id). A given address must be free; a pool named with it must hold it."""
    pool = _pool(settings, pool_id)
    if address is not None:
        ip = ipaddress.ip_address(address)
        if pool_id is not None and ip not in pool.cidr:
            raise BadRequest(f"vip_address {address} is not in VIP pool {pool.id} ({pool.cidr})")
        owner = session.scalar(select(LoadBalancer.id).where(LoadBalancer.vip_address == str(ip)))
        if owner:
            raise Conflict(f"VIP address {ip} is already used by load balancer {owner}")
        return str(ip), pool.id
    used = set(session.scalars(select(LoadBalancer.vip_address)))
    for host in pool.cidr.hosts():
        if str(host) not in used:
            return str(host), pool.id
    raise Conflict(f"VIP pool {pool.id} ({pool.cidr}) has no free address")
