"""Shoal's own API: /v2/shoal (revisions, nodes and agents, clusters, events, tokens, flow
trace, VIP pools)."""

from __future__ import annotations

from fastapi import APIRouter

from shoal.controller.api.shoal import (
    admin,
    certificates,
    enrollments,
    nodes,
    revisions,
    vip_pools,
)

__all__ = ["router"]

router = APIRouter()
for module in (revisions, nodes, enrollments, admin, certificates, vip_pools):
    router.include_router(module.router)
