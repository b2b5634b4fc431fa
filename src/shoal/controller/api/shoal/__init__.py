"""Shoal's own API: /v2/shoal (revisions, nodes and agents, clusters, events, tokens, flow
trace)."""

from __future__ import annotations

from fastapi import APIRouter

from shoal.controller.api.shoal import admin, certificates, enrollments, nodes, revisions

__all__ = ["router"]

router = APIRouter()
for module in (revisions, nodes, enrollments, admin, certificates):
    router.include_router(module.router)
