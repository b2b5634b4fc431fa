"""Octavia v2: /v2/lbaas (and its alias /v2.0/lbaas)."""

from __future__ import annotations

from fastapi import APIRouter

from shoal.controller.api.lbaas import (
    catalog,
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
):
    router.include_router(module.router)
