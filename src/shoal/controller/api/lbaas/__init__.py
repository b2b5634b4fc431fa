"""Octavia v2: /v2/lbaas (and its alias /v2.0/lbaas)."""

from __future__ import annotations

from fastapi import APIRouter

from shoal.controller.api.lbaas import (
    availability_zones,
    catalog,
    flavors,
    healthmonitors,
    l7policies,
    listeners,
    loadbalancers,
    members,
    pools,
    quotas,
)

__all__ = ["router"]

router = APIRouter()
for module in (
    loadbalancers,
    listeners,
    pools,
    members,
    healthmonitors,
    l7policies,
    quotas,
    catalog,
    flavors,
    availability_zones,
):
    router.include_router(module.router)
