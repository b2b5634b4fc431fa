"""Providers and what their flavor and availability zone profiles may hold."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from shoal.controller.api.common import select_fields
from shoal.controller.api.deps import CurrentPrincipal, State
from shoal.controller.services import providers

router = APIRouter(tags=["catalog"])


@router.get("/providers")
def list_providers(request: Request, state: State, principal: CurrentPrincipal) -> dict[str, Any]:
    items = [
        {"name": p.name, "description": p.description}
        for name, p in providers.PROVIDERS.items()
        if name in state.settings.enabled_providers
    ]
    return {"providers": select_fields(request, items)}


def _capabilities(request: Request, table: dict[str, str]) -> list[dict[str, Any]]:
    """A provider's capability table as Octavia lists it: name= and description= filter."""
    name, description = request.query_params.get("name"), request.query_params.get("description")
    items = [
        {"name": k, "description": v}
        for k, v in table.items()
        if name in (None, k) and description in (None, v)
    ]
    return select_fields(request, items)


@router.get("/providers/{provider}/flavor_capabilities")
def flavor_capabilities(
    provider: str, request: Request, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    table = providers.get(provider, state.settings.enabled_providers).flavor_capabilities
    return {"flavor_capabilities": _capabilities(request, table)}


@router.get("/providers/{provider}/availability_zone_capabilities")
def availability_zone_capabilities(
    provider: str, request: Request, state: State, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    table = providers.get(provider, state.settings.enabled_providers).availability_zone_capabilities
    return {"availability_zone_capabilities": _capabilities(request, table)}
